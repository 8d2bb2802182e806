"""Runs that MLflow starts and ends, living as nbtrack's own do.

A run MLflow creates is opened in nbtrack's default session (``Session.adopt``): the
session's start hooks give it what a run started by ``nbtrack.start_run`` gets (in a
kernel with ``%load_ext nbtrack``: the execution trace and stale verdict, figures; the
environment comes with every new run), and a run started in a cell records the cell. When
MLflow ends it, the session ends it (end hooks, then the store).

Inside a ``%%track`` cell, MLflow's fluent ``start_run`` joins the cell's run instead of
starting a second one: the run context provider (context.py) marks the tags MLflow's
``start_run`` resolves with :data:`JOIN_TAG`, and :func:`create` hands back the cell's run.
MLflow's own ending of a joined run is ignored (the cell ends it, with the cell's outcome),
and when the cell ends it, MLflow's active run is ended too, so the next cell's MLflow
calls do not log into it.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from nbtrack.store import Store
from nbtrack.tracking import context, fluent

JOIN_TAG = "nbtrack.plugin.join"  # never stored: which %%track run MLflow's start_run joins
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"

_joined: set[str] = set()  # %%track runs MLflow's start_run joined, until the cell ends them
_lock = threading.Lock()


def create(
    store: Store,
    experiment_id: str,
    user_id: str,
    tags: dict[str, str],
    run_name: str,
    start_time: int | None,
) -> str:
    """A new RUNNING run as MLflow asked for it (or the %%track run it joins); its id.

    The run has exactly the tags MLflow gives (its run context providers resolved them),
    and the records nbtrack's run context adds (the environment) and, started in a cell,
    the cell.
    """
    join = tags.pop(JOIN_TAG, None)
    if join is not None and PARENT_TAG not in tags:
        joined = _join(store, join, tags)
        if joined is not None:
            return joined
    found = context.collect(store)
    writer = store.create_run(
        experiment_id, run_name=run_name, user_id=user_id, tags=tags, start_time=start_time
    )
    cell = _running_cell_record()
    for record in [*found.records, *([cell] if cell is not None else [])]:
        writer.write(record)
    fluent.default_session().adopt(writer)
    return writer.run_id


def finish(store: Store, run_id: str, status: str, end_time: int | None) -> None:
    """End a run as MLflow asks; a joined %%track run is left for its cell to end."""
    if run_id in _joined:
        return
    session = fluent.default_session()
    if session.open_run(run_id) is not None:
        session.end(run_id, status)
    else:
        store.finish_run(run_id, status, end_time)


def resume(store: Store, run_id: str) -> None:
    """Mark a run RUNNING again and open it here (MLflow's ``start_run(run_id=...)``)."""
    if run_id in _joined:
        return
    session = fluent.default_session()
    writer = store.resume_run(run_id)
    if session.open_run(run_id) is None:
        session.adopt(writer, resumed=True)


def _join(store: Store, run_id: str, tags: dict[str, Any]) -> str | None:
    run = fluent.default_session().open_run(run_id)
    if run is None or run.store is not store:
        return None
    current = store.get_run(run_id).get("tags", {})
    new = {k: v for k, v in tags.items() if k not in current and k != RUN_NAME_TAG}
    if new:
        store.set_tags(run_id, new)
    with _lock:
        if not _joined:
            context.observe(_nothing, on_run_end)
        _joined.add(run_id)
    return run_id


def on_run_end(run_id: str, status: str) -> None:
    """A process-wide end observer: a joined run's cell has ended it, so MLflow's active
    run (when it is that run) ends too."""
    if run_id not in _joined:
        return
    mlflow = sys.modules.get("mlflow")
    try:
        active = mlflow.active_run() if mlflow is not None else None
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status)  # MLflow's update lands in finish(), which ignores it
    finally:
        with _lock:
            _joined.discard(run_id)


def _nothing(*_: object) -> None:
    """The start half of the observer pair: joining needs only the end."""


def _running_cell_record() -> dict[str, Any] | None:
    # The magics are loaded with the extension: a script never imports IPython for this.
    magics = sys.modules.get("nbtrack.magics")
    return magics.running_cell_record() if magics is not None else None
