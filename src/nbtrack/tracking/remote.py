"""Runs pulled from a tracking server: their artifacts are fetched on first open.

Fetching needs MLflow's client, which lives in the sync package above this layer; it is
named here as ``"module:function"`` and imported on the first open of a pulled run, as
the magics import their commands.
"""

from __future__ import annotations

import pkgutil

from nbtrack.store import Store

FETCHER = "nbtrack.sync.fetch:fetch_artifacts"


def ensure_artifacts(store: Store, run_id: str) -> None:
    """Fetch a pulled run's artifacts if they have not been yet."""
    remote = store.get_run(run_id).get("remote")
    if remote and not remote.get("fetched"):
        pkgutil.resolve_name(FETCHER)(store, run_id)
