"""Two-way sync between the local store and an MLflow tracking server.

::

    import nbtrack.sync

    nbtrack.sync.push("http://mlflow.example:5000")             # my runs, models, audit trail
    nbtrack.sync.pull("http://mlflow.example:5000", ["churn"])  # teammates' runs, read-only
    nbtrack.sync.status("http://mlflow.example:5000")           # pending, conflicts
    nbtrack.sync.auto("http://mlflow.example:5000")             # push each run as it ends

The server is reached through MLflow's own REST client (``pip install 'nbtrack[mlflow]'``);
credentials come from MLflow's environment variables and are never printed or stored.
Push and pull are incremental (per-run watermarks, :mod:`nbtrack.sync.state`) and safe to
kill at any moment; conflicts are merged by the rule in :mod:`nbtrack.sync.runs`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from nbtrack.store import Store
from nbtrack.sync import background
from nbtrack.sync.report import SyncReport
from nbtrack.sync.server import Server, display_uri
from nbtrack.sync.state import held, peek
from nbtrack.sync.status import SyncStatus, sync_status

__all__ = ["SyncReport", "SyncStatus", "auto", "display_uri", "pull", "push", "status"]


def push(
    server: str,
    experiments: str | Sequence[str] | None = None,
    filter_string: str = "",
    *,
    store: Store | None = None,
    run_ids: Sequence[str] | None = None,
    progress: bool = True,
) -> SyncReport:
    """Push local runs (and the model registry) to an MLflow tracking server.

    Parameters
    ----------
    server
        The server's tracking URI, ``http(s)://HOST:PORT``.
    experiments
        Experiment names to push (default: all); ``filter_string`` narrows the runs
        with MLflow's search grammar; ``run_ids`` names runs instead. The registry is
        pushed whole, with the runs its versions come from.
    store
        The store (default: the current one).

    Raises
    ------
    SyncError
        The server is unreachable, keeps failing, refuses the credentials or runs an
        MLflow too old; what was pushed before is recorded, so pushing again resumes.
    """
    return push_over(
        Server(server),
        store or _current_store(),
        _names(experiments),
        filter_string,
        list(run_ids) if run_ids else None,
        progress,
    )


def push_over(
    connection: Server,
    store: Store,
    experiments: list[str] | None,
    filter_string: str,
    run_ids: list[str] | None,
    progress: bool,
) -> SyncReport:
    """:func:`push` through ``connection``, checked on its first push only: background
    sync pushes every run over one connection, two requests a run fewer."""
    from nbtrack.sync.pusher import Pusher, select_runs
    from nbtrack.sync.registry import RegistryPusher, source_runs

    requests_before, started = connection.requests, time.perf_counter()
    report = SyncReport(connection.name, "push")
    store.flush(durable=False)  # points still buffered in this process go too
    with held(store, connection.name) as state:
        if connection.version is None:
            connection.check()
        rows = select_runs(store, experiments, filter_string, run_ids)
        # Registered versions need their source runs on the server, chosen or not.
        extra = sorted(source_runs(store) - {row["run_id"] for row in rows})
        rows += select_runs(store, None, "", [r for r in extra if _exists(store, r)])
        pusher = Pusher(store, connection, state, report)
        pusher.push_all(pusher.plan(rows), progress)
        RegistryPusher(store, connection, state, report).push()
    report.requests = connection.requests - requests_before
    report.seconds = time.perf_counter() - started
    return report


def pull(
    server: str,
    experiments: str | Sequence[str] | None = None,
    filter_string: str = "",
    *,
    store: Store | None = None,
    progress: bool = True,
) -> SyncReport:
    """Bring a tracking server's runs into the local store, read-only, beside local runs.

    ``experiments`` (names; default: every active one) and ``filter_string`` (MLflow's
    grammar, evaluated by the server) choose the runs. Metric histories come at once,
    artifacts on first open. Runs pushed from this store come back as merged changes.

    Raises
    ------
    SyncError
        As :func:`push`; runs pulled before the error are kept.
    """
    from nbtrack.sync.puller import Puller

    store = store or _current_store()
    connection, started = Server(server), time.perf_counter()
    report = SyncReport(connection.name, "pull")
    with held(store, connection.name) as state:
        connection.check()
        Puller(store, connection, state, report).pull(_names(experiments), filter_string, progress)
    report.requests, report.seconds = connection.requests, time.perf_counter() - started
    return report


def status(server: str, *, store: Store | None = None, check_server: bool = True) -> SyncStatus:
    """What is pushed and waiting, what was pulled, the conflicts merged and their lost
    values; with ``check_server``, the server's version and the runs changed there."""
    store = store or _current_store()
    name = display_uri(server)
    connection = Server(server) if check_server else None
    result = sync_status(store, connection, peek(store, name))
    running = background.current()
    if running is not None and running.server == name:
        result.background = running.pending()
    return result


def auto(server: str | None, on: bool = True) -> background.AutoSync | None:
    """Push each run the default session ends to ``server``, from a background thread
    (``on=False`` or ``server=None``: stop). Offline or failing, runs stay queued and are
    retried with backoff; ``%track`` shows the queue."""
    if server is not None:
        Server(server)  # a bad URI or a missing MLflow fails now, not in the thread
    return background.auto(server if on else None, push_over)


def _names(experiments: str | Sequence[str] | None) -> list[str] | None:
    if experiments is None:
        return None
    return [experiments] if isinstance(experiments, str) else list(experiments)


def _exists(store: Store, run_id: str) -> bool:
    try:
        store.get_run(run_id)
    except LookupError:
        return False
    return True


def _current_store() -> Store:
    from nbtrack.tracking import fluent

    return fluent.current_store()
