"""MLflow's run context provider for nbtrack: what MLflow's ``start_run`` learns in a kernel
with ``%load_ext nbtrack``.

MLflow's own default context calls a notebook's run source ``ipykernel_launcher.py``;
this one names the notebook (``mlflow.source.name``, type NOTEBOOK), whatever store MLflow
writes to. Inside a ``%%track`` cell, when MLflow writes to that cell's nbtrack store, it
also marks the tags so the run joins the cell's (lifecycle.py). The journal records a run
gets in a kernel (cell, trace, environment) are written by the plugin's tracking store.
"""

from __future__ import annotations

import sys

from mlflow.tracking.context.abstract_context import RunContextProvider

from nbtrack.capture import notebook


class NbtrackRunContext(RunContextProvider):
    def in_context(self) -> bool:
        magics = sys.modules.get("nbtrack.magics")
        return magics is not None and magics.extension_loaded()

    def tags(self) -> dict[str, str]:
        name, kind = notebook.source()
        tags = {"mlflow.source.name": name, "mlflow.source.type": kind}
        run = sys.modules["nbtrack.magics"].tracked_cell_run()
        if run is not None and _mlflow_writes_to(run.store.root):
            from nbtrack.mlflow_plugin.lifecycle import JOIN_TAG

            tags[JOIN_TAG] = run.run_id
        return tags


def _mlflow_writes_to(root) -> bool:
    import mlflow

    from nbtrack.mlflow_plugin import uris

    uri = mlflow.get_tracking_uri()
    return uri.startswith(f"{uris.TRACKING_SCHEME}:") and uris.store_path(uri) == root
