"""nbtrack's Jupyter server extension: a REST API over the store, under ``/nbtrack/api/``.

Enabled on install (``etc/jupyter/jupyter_server_config.d/nbtrack.json``), it serves the
JupyterLab extension's Experiments sidebar, run, compare and registry views: experiments,
runs (MLflow's filter grammar, order and page tokens), one run, metric histories,
artifacts, the registry and a change feed (:mod:`nbtrack.server.routes` lists them), and
the panels themselves (:mod:`nbtrack.server.panels`). Every handler needs Jupyter's
authentication, and its XSRF check for writes.

The store is the one the server's root directory uses, by the API's rules: the setting
``c.NbtrackServer.store``, else ``$NBTRACK_TRACKING_URI`` or ``$NBTRACK_DIR``, else
``.nbtrack`` in the root directory (see :mod:`nbtrack.server.settings`).
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbtrack.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from nbtrack.server.routes import setup

    setup(serverapp)
