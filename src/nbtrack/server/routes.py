"""The REST API under ``/nbtrack/api/`` and the extension's setup.

=====================================================  =========================================
``GET  experiments``                                   experiments (``view``), with run counts
``GET  runs``                                          MLflow's search: ``experiment_ids``,
                                                       ``filter``, ``order_by``, ``view``,
                                                       ``max_results``, ``page_token``
``GET  runs/<id>``                                     one run: info, data, inputs, artifacts,
                                                       provenance, the cell that made it
``GET  runs/<id>/metrics/<key>``                       a metric's history (``max_points``)
``GET  runs/<id>/artifacts/<path>``                    an artifact's bytes, sandboxed
``POST runs/<id>/cell``                                does ``{source}`` still match the cell?
``GET  kernels/<kernel_id>/run``                       the run the kernel is logging to
``GET  registry/models``, ``registry/models/<name>``   models, versions, the audit log
``POST registry/models/<name>/versions/<v>/check``     a stage or alias move's dry run
``POST registry/models/<name>/versions/<v>/stage``     move to a stage (``reason``, ``force``)
``POST registry/models/<name>/versions/<v>/alias``     point an alias (``reason``, ``force``)
``GET  changes``                                       the change feed (``after``, ``timeout``)
``GET/POST/DELETE panels``                             the panels (:mod:`nbtrack.server.panels`)
=====================================================  =========================================

Bad input is a 400 whose JSON names the rule (a bad filter adds its ``text`` and
``span``), an unknown run or model a 404, a refused transition a 409.
"""

from __future__ import annotations

import threading
from typing import Any

from jupyter_server.utils import url_path_join

from nbtrack.server import handlers
from nbtrack.server.feed import ChangeFeed
from nbtrack.server.panels import PanelHub
from nbtrack.server.settings import NbtrackServer, StoreHandle, store_path

ROUTES = [
    (r"experiments", handlers.Experiments),
    (r"runs", handlers.Runs),
    (r"runs/(?P<run_id>[0-9a-f]{32})", handlers.OneRun),
    (r"runs/(?P<run_id>[0-9a-f]{32})/metrics/(?P<key>.+)", handlers.MetricHistory),
    (r"runs/(?P<run_id>[0-9a-f]{32})/artifacts/(?P<path>.+)", handlers.Artifact),
    (r"runs/(?P<run_id>[0-9a-f]{32})/cell", handlers.CellMatch),
    (r"kernels/(?P<kernel_id>[0-9a-zA-Z-]+)/run", handlers.KernelRun),
    (r"registry/models", handlers.Models),
    (r"registry/models/(?P<name>[^/]+)", handlers.Model),
    (r"registry/models/(?P<name>[^/]+)/versions/(?P<version>\d+)/check", handlers.CheckMove),
    (r"registry/models/(?P<name>[^/]+)/versions/(?P<version>\d+)/stage", handlers.MoveStage),
    (r"registry/models/(?P<name>[^/]+)/versions/(?P<version>\d+)/alias", handlers.MoveAlias),
    (r"changes", handlers.Changes),
    (r"panels", handlers.Panels),
    (r"panels/(?P<model_id>[0-9a-f]{32})", handlers.OnePanel),
    (r"store", handlers.StoreInfo),
]


def setup(serverapp: Any) -> None:
    """Register the handlers on the server, over the store its root directory uses."""
    settings = NbtrackServer(parent=serverapp)
    root_dir = serverapp.root_dir
    handle = StoreHandle(store_path(root_dir, settings.store), root_dir)
    feed = ChangeFeed(handle, settings.poll_seconds)
    hub = PanelHub(handle)
    hub.install()
    feed.listeners.append(hub.tick_all)
    web_app = serverapp.web_app
    web_app.settings["nbtrack"] = handlers.Context(handle, feed, hub, serverapp.kernel_manager)
    base = url_path_join(web_app.settings["base_url"], "nbtrack", "api")
    web_app.add_handlers(".*$", [(url_path_join(base, path), cls) for path, cls in ROUTES])
    # Opening a store of 10,000 runs takes a second or two (its catalog, recovery):
    # done now, in the background, rather than when the sidebar first asks.
    threading.Thread(target=handle.existing, name="nbtrack-open-store", daemon=True).start()
    serverapp.log.info("nbtrack: the sidebar's API serves the store %s", handle.path)
