"""The run a project execution logs into: created SCHEDULED here, joined by the child process.

The child (a kernel running the notebook, or the MLproject command) starts with
``NBTRACK_RUN_ID`` set, so its first ``start_run()`` — explicit, a ``%%track`` cell, or the
first ``log_metric`` — resumes this run instead of starting another. When the child is
done, :func:`finish` records the outcome: FINISHED, or FAILED with the error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nbtrack.tracking import fluent
from nbtrack.validation import check_tags


def schedule(name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
    """Create a run with the system, environment and given tags and params; return its id.

    It is left SCHEDULED and not active here (no start hook measures or traces it in this
    process): another process will resume it.
    """
    session = fluent.default_session()
    store = session.store
    run_id = session.create_run(None, name, check_tags(tags)).run_id
    if params:
        store.log_params(run_id, {str(k): str(v) for k, v in params.items()})
    store.finish_run(run_id, "SCHEDULED")
    return run_id


def finish(
    run_id: str,
    status: str,
    error: str | None = None,
    artifact: str | os.PathLike[str] | None = None,
) -> None:
    """Attach ``artifact`` (a file), record ``error`` and set the final status."""
    store = fluent.current_store()
    if artifact is not None:
        store.add_artifact(run_id, Path(artifact).name, artifact)
    if error:
        store.set_fields(run_id, error=error[:1000])
    store.finish_run(run_id, status)


def store_uri() -> str:
    """The store the child must log into (this process's)."""
    return os.fspath(fluent.current_store().root)
