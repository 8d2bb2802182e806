"""Logging that runs after a fit returns: one background thread, waited on per run.

Computing training metrics and plots takes a fraction of the fit itself (predictions on
the training set, a confusion matrix rendered to PNG). It runs here, off the user's
thread, on a snapshot of the fitted estimator; a run waits for its pending work before it
ends (``fluent``'s end hook), so a finished run is complete.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from typing import Any

from nbtrack.autologging.patches import guarded

_executor: ThreadPoolExecutor | None = None
_pending: dict[str, list[Future]] = {}  # run id -> its unfinished jobs
_lock = threading.Lock()


def submit(run_id: str, what: str, job: Callable[..., Any], *args: Any) -> Future:
    """Run ``job(*args)`` in the background for ``run_id``; a failure becomes a warning."""
    global _executor
    with _lock:
        if _executor is None:
            # Non-daemon: the interpreter finishes queued logging before it exits.
            _executor = ThreadPoolExecutor(1, thread_name_prefix="nbtrack-autolog")
        future = _executor.submit(guarded, what, job, *args)
        _pending.setdefault(run_id, []).append(future)
    future.add_done_callback(lambda done: _forget(run_id, done))
    return future


def _forget(run_id: str, future: Future) -> None:
    with _lock:
        futures = _pending.get(run_id)
        if futures is not None and future in futures:
            futures.remove(future)
            if not futures:
                del _pending[run_id]


def wait(run_id: str | None = None, timeout: float | None = None) -> None:
    """Block until the background logging of ``run_id`` (or of every run) is done."""
    if threading.current_thread().name.startswith("nbtrack-autolog"):
        return  # a job ending its own run must not wait for itself
    with _lock:
        if run_id is None:
            futures = [f for jobs in _pending.values() for f in jobs]
        else:
            futures = list(_pending.get(run_id, ()))
    if futures:
        wait_all(futures, timeout=timeout)


def on_run_end(run_id: str, status: str) -> None:
    """fluent's end hook: a run ends only after its autolog work has landed."""
    if _pending:
        wait(run_id)
