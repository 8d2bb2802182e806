"""The fluent tracking API: module-level functions over one active run, named as MLflow's.

``log_metric`` is the hot path: it extends the active run's flat buffer by one point after
checks that cost a set lookup and a type test, and the store writes buffers in batches.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import getpass
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from time import time as _time
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlparse

from nbtrack.capture import notebook
from nbtrack.entities import (
    Experiment,
    MetricHistory,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    ViewType,
    experiment_from_row,
    run_from_row,
)
from nbtrack.errors import InvalidParameterError, NotFoundError, RunStateError
from nbtrack.store import DEFAULT_EXPERIMENT_ID, RunWriter, Store
from nbtrack.tracking.names import random_run_name
from nbtrack.validation import (
    check_experiment_name,
    check_key,
    check_param_value,
    check_tag_value,
    check_tags,
    metric_step,
    metric_timestamp,
    metric_value,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from nbtrack.store.query import RunHits

DEFAULT_STORE_DIR = ".nbtrack"

_active: list[ActiveRun] = []  # the active run stack; nested runs sit above their parent
_metric_keys: set[str] = set()  # keys already validated, so the hot path skips the regex
_stores: dict[Path, Store] = {}
_state_lock = threading.RLock()
_tracking_uri: Path | None = None  # set by set_tracking_uri, resolved once
_experiment_id: str | None = None
_experiment_name: str | None = None  # the active experiment's name, to find it in a new store
_run_factory: Callable[[], ActiveRun | None] | None = None
_last_run_id: str | None = None
# Inputs known to be in a run's journal: journals only grow, so a key seen stays true and
# logging it again needs no journal read.
_known_inputs: set[tuple[Path, str, tuple]] = set()
# Provenance features (autolog, system metrics, the execution trace) register here: each
# start hook gets (run, resumed) once a run is active, each end hook (run_id, status)
# before this process finishes a run. A failing hook warns; it never fails the run.
run_start_hooks: list[Callable[[ActiveRun, bool], None]] = []
run_end_hooks: list[Callable[[str, str], None]] = []


class ActiveRun:
    """The run being logged to; as a context manager it ends the run on exit.

    On a clean exit the run is FINISHED; on an exception FAILED; on KeyboardInterrupt
    KILLED. ``info`` and ``data`` are read from the store each time, so they are current.
    """

    def __init__(self, store: Store, writer: RunWriter) -> None:
        self._store = store
        self._writer = writer
        self.run_id = writer.run_id
        self.points: list = writer.points  # flat: key, value, step, time (records.py)

    @property
    def info(self) -> RunInfo:
        return self._snapshot().info

    @property
    def data(self) -> RunData:
        return self._snapshot().data

    def _snapshot(self) -> Run:
        return run_from_row(self._store.get_run(self.run_id))

    def to_dictionary(self) -> dict[str, Any]:
        return self._snapshot().to_dictionary()

    def _use_buffer(self, buffer: list) -> None:
        """Swap the metric buffer (after writing what the old one holds)."""
        self._writer.flush()
        self._writer.points = self.points = buffer

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        _end_run_and_children(self.run_id, status)

    def __repr__(self) -> str:
        return f"<ActiveRun: run_id={self.run_id}>"


# -- where runs are stored ---------------------------------------------------------------


def set_tracking_uri(uri: str | os.PathLike[str]) -> None:
    """Use the store in a folder (a path or a ``file:`` URI); it is created on first use."""
    global _tracking_uri, _experiment_id
    path = _path_from_uri(uri)
    if _active:
        raise RunStateError(
            f"Run '{_active[-1].run_id}' is active; end it before switching to store {path}."
        )
    _tracking_uri = path
    _experiment_id = None  # ids belong to a store; the name is looked up in the new one


def get_tracking_uri() -> str:
    """The current store as a ``file:`` URI."""
    return _store_path().as_uri()


def _store_path() -> Path:
    if _tracking_uri is not None:
        return _tracking_uri
    for variable in ("NBTRACK_TRACKING_URI", "NBTRACK_DIR"):
        if os.environ.get(variable):
            return _resolved(os.environ[variable], os.getcwd())
    return _resolved(DEFAULT_STORE_DIR, os.getcwd())


@functools.lru_cache(maxsize=16)
def _resolved(uri: str, cwd: str) -> Path:
    """A relative store path is relative to the working directory, hence the key."""
    return _path_from_uri(uri)


def _path_from_uri(uri: str | os.PathLike[str]) -> Path:
    text = os.fspath(uri)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return Path(unquote(parsed.netloc + parsed.path) or ".").expanduser().resolve()
    if parsed.scheme and len(parsed.scheme) > 1:  # a one-letter scheme is a Windows drive
        raise InvalidParameterError(
            f"Tracking URI {text!r} is not supported: nbtrack stores runs in a folder. "
            "Pass a folder path or a file: URI."
        )
    return Path(text).expanduser().resolve()


def current_store() -> Store:
    """The store at the tracking URI, opened once per process."""
    path = _store_path()
    store = _stores.get(path)
    if store is None:
        with _state_lock:
            store = _stores.get(path)
            if store is None:
                store = _stores[path] = Store(path)
    return store


# -- experiments -------------------------------------------------------------------------


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment active, creating it by name if it does not exist."""
    global _experiment_id, _experiment_name
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidParameterError("Pass exactly one of experiment_name or experiment_id.")
    if experiment_name is not None:
        check_experiment_name(experiment_name)
    store = current_store()
    if experiment_id is not None:
        row = store.get_experiment(str(experiment_id))
    else:
        row = store.get_or_create_experiment(experiment_name)
    if row["lifecycle_stage"] != "active":
        raise RunStateError(
            f"Experiment '{row['name']}' is deleted; restore it with restore_experiment() "
            "or choose another name."
        )
    _experiment_id, _experiment_name = row["experiment_id"], row["name"]
    return _experiment(row)


def create_experiment(
    name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
) -> str:
    """Create an experiment and return its id.

    ``artifact_location`` is accepted for MLflow compatibility and ignored with a warning:
    nbtrack keeps every artifact inside its store, beside the run that logged it.
    """
    check_experiment_name(name)
    if artifact_location is not None:
        warnings.warn(
            f"create_experiment(artifact_location={artifact_location!r}) is ignored: nbtrack "
            "keeps artifacts inside the store.",
            stacklevel=2,
        )
    clean = check_tags(tags)
    return current_store().create_experiment(name, clean)


def get_experiment(experiment_id: str) -> Experiment:
    return _experiment(current_store().get_experiment(str(experiment_id)))


def get_experiment_by_name(name: str) -> Experiment | None:
    row = current_store().get_experiment_by_name(name)
    return _experiment(row) if row is not None else None


def search_experiments(view_type: int = ViewType.ACTIVE_ONLY) -> list[Experiment]:
    rows = current_store().experiments()
    return [_experiment(r) for r in rows if _visible(r["lifecycle_stage"], view_type)]


def delete_experiment(experiment_id: str) -> None:
    current_store().update_experiment(str(experiment_id), lifecycle_stage="deleted")


def restore_experiment(experiment_id: str) -> None:
    current_store().update_experiment(str(experiment_id), lifecycle_stage="active")


def set_experiment_tag(key: str, value: Any) -> None:
    current_store().update_experiment(_current_experiment_id(), tags=check_tags({key: value}))


def _experiment(row: dict[str, Any]) -> Experiment:
    return experiment_from_row(row, (current_store().root / "runs").as_uri())


def _current_experiment_id() -> str:
    if _experiment_id is not None:
        return _experiment_id
    name = (
        _experiment_name
        or os.environ.get("NBTRACK_EXPERIMENT_NAME")
        or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    )
    if name:
        return set_experiment(name).experiment_id
    return DEFAULT_EXPERIMENT_ID


# -- starting and ending runs --------------------------------------------------------------


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    """Start a new run (or resume ``run_id``) and make it active.

    Raises
    ------
    RunStateError
        If a run is already active and ``nested`` is False.
    """
    global _last_run_id
    if _active and not nested:
        raise RunStateError(
            f"Run with UUID {_active[-1].run_id} is already active. To start a new run, "
            "first end the current run with nbtrack.end_run(). To start a nested run, call "
            "start_run() with nested=True."
        )
    run_id = run_id or (None if _active else os.environ.get("NBTRACK_RUN_ID"))
    user_tags = check_tags(tags)
    store = current_store()
    if run_id is not None:
        active = ActiveRun(store, store.resume_run(run_id))
        if user_tags:
            store.append(run_id, [{"op": "tags", "tags": user_tags}])
    else:
        if parent_run_id is None and nested and _active:
            parent_run_id = _active[-1].run_id
        name = run_name or user_tags.get("mlflow.runName") or random_run_name()
        experiment = str(experiment_id) if experiment_id is not None else None
        writer = create_run(store, experiment, name, user_tags, parent_run_id, description)
        active = ActiveRun(store, writer)
    _active.append(active)
    _last_run_id = active.run_id
    if run_start_hooks:
        _call_hooks(run_start_hooks, active, run_id is not None)
    return active


def create_run(
    store: Store,
    experiment_id: str | None,
    name: str,
    tags: dict[str, str],
    parent_run_id: str | None = None,
    description: str | None = None,
    start_time: int | None = None,
) -> RunWriter:
    """A RUNNING run with MLflow's system tags, the git tags, ``tags`` and the session's
    environment, in ``experiment_id`` (None: the active experiment). It is not made active
    and no start hook runs: :func:`start_run` does both, for runs this process works in.
    """
    system = _system_tags(name, parent_run_id, description)
    environment, git_tags = _environment(store)
    writer = store.create_run(
        experiment_id if experiment_id is not None else _current_experiment_id(),
        run_name=name,
        user_id=system["mlflow.user"],
        tags={**system, **git_tags, **tags},
        start_time=start_time,
    )
    if environment is not None:
        writer.write(environment)
    return writer


def _environment(store: Store) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The record referencing the session's environment, and its git tags (captured once
    per process, then a dictionary lookup). A capture that fails warns; the run goes on."""
    try:
        from nbtrack.capture import environment

        return environment.for_run(store.root)
    except Exception as error:
        warnings.warn(f"nbtrack could not capture the environment: {error!r}", stacklevel=3)
        return None, {}


def _call_hooks(hooks: list[Callable[..., None]], *args: Any) -> None:
    for hook in list(hooks):
        try:
            hook(*args)
        except Exception as error:  # provenance must never break the run it describes
            warnings.warn(f"nbtrack hook {hook!r} failed: {error!r}", stacklevel=3)


def _system_tags(name: str, parent_run_id: str | None, description: str | None) -> dict:
    source_name, source_type = notebook.source()
    tags = {
        "mlflow.runName": name,
        "mlflow.user": _user(),
        "mlflow.source.name": source_name,
        "mlflow.source.type": source_type,
    }
    if parent_run_id is not None:
        tags["mlflow.parentRunId"] = parent_run_id
    if description:
        tags["mlflow.note.content"] = check_tag_value("mlflow.note.content", description)
    return tags


def _user() -> str:
    """Who is acting (``mlflow.user``, the registry's audit trail): ``$NBTRACK_USER``, else
    MLflow's ``$MLFLOW_TRACKING_USERNAME``, else the OS user."""
    for variable in ("NBTRACK_USER", "MLFLOW_TRACKING_USERNAME"):
        configured = os.environ.get(variable, "").strip()
        if configured:
            return configured
    return _os_user()


@functools.cache
def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


def end_run(status: str = RunStatus.FINISHED) -> None:
    """End the innermost active run with ``status`` (FINISHED by default)."""
    if status not in RunStatus.all_status() or status == RunStatus.RUNNING:
        raise InvalidParameterError(f"end_run(status={status!r}): use FINISHED, FAILED or KILLED.")
    if _active:
        _end(_active.pop(), status)


def _end_run_and_children(run_id: str, status: str) -> None:
    ids = [run.run_id for run in _active]
    if run_id not in ids:
        return  # already ended, e.g. by end_run() inside the block
    while _active:
        run = _active.pop()
        _end(run, status)
        if run.run_id == run_id:
            return


def _end(run: ActiveRun, status: str) -> None:
    if run_end_hooks:
        _call_hooks(run_end_hooks, run.run_id, status)
    run._store.finish_run(run.run_id, status)


def active_run() -> ActiveRun | None:
    """The innermost active run, or None."""
    return _active[-1] if _active else None


def last_active_run() -> Run | None:
    """The run started most recently in this process, active or ended."""
    if _active:
        return _active[-1]._snapshot()
    return get_run(_last_run_id) if _last_run_id is not None else None


def set_run_factory(factory: Callable[[], ActiveRun | None] | None) -> None:
    """Let a frontend decide which run starts when logging finds none active.

    The magics use it so that, under ``%track on``, logging in a cell starts that cell's
    child run instead of a run that outlives the cell.
    """
    global _run_factory
    _run_factory = factory


def _get_or_start_run() -> ActiveRun:
    if _active:
        return _active[-1]
    if _run_factory is not None:
        run = _run_factory()
        if run is not None:
            return run
    return start_run()


def _run_for(run_id: str | None) -> ActiveRun | None:
    """The active run to log to: ``run_id``'s if it is active here, else None."""
    if run_id is None:
        return _get_or_start_run()
    for run in _active:
        if run.run_id == run_id:
            return run
    return None


# -- logging -------------------------------------------------------------------------------


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    synchronous: bool | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
    **_ignored: Any,
) -> None:
    """Log one metric point; costs about a list append (written in batches)."""
    if key not in _metric_keys:
        _metric_keys.add(check_key(key, "metric"))
    if type(value) is not float:
        value = metric_value(key, value)
    point = (
        key,
        value,
        0 if step is None else (step if type(step) is int else metric_step(key, step)),
        _time() * 1000 if timestamp is None else metric_timestamp(key, timestamp),
    )
    if run_id is None:
        (_active[-1] if _active else _get_or_start_run()).points.extend(point)
    else:
        _log_points(run_id, point)


def log_metrics(
    metrics: dict[str, float],
    step: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    timestamp: int | None = None,
    **_ignored: Any,
) -> None:
    """Log several metrics at one step; all are checked before any is logged."""
    step = 0 if step is None else metric_step("step", step)
    when = _time() * 1000 if timestamp is None else metric_timestamp("timestamp", timestamp)
    points = [
        item
        for k, v in metrics.items()
        for item in (check_key(k, "metric"), metric_value(k, v), step, when)
    ]
    if run_id is None:
        _get_or_start_run().points.extend(points)
    else:
        _log_points(run_id, points)


def _log_points(run_id: str, points: list | tuple) -> None:
    run = _run_for(run_id)
    if run is not None:
        run.points.extend(points)
    else:
        current_store().log_points(run_id, list(points))


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    """Log a param (stored as ``str(value)``); returns ``value`` as MLflow does."""
    text = check_param_value(check_key(key, "param"), value)
    run = _get_or_start_run()
    run._store.log_params(run.run_id, {key: text})
    return value


def log_params(params: dict[str, Any], synchronous: bool | None = None, run_id=None) -> None:
    """Log several params; all are checked before any is written."""
    clean = {check_key(k, "param"): check_param_value(k, v) for k, v in params.items()}
    store, target = _target(run_id)
    store.log_params(target, clean)


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    set_tags({key: value})


def set_tags(
    tags: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    """Set tags on the active run (starting one if needed) or on ``run_id``; later values
    replace earlier."""
    clean = check_tags(tags)
    store, run_id = _target(run_id)
    store.append(run_id, [{"op": "tags", "tags": clean}])


def delete_tag(key: str, run_id: str | None = None) -> None:
    """Remove a tag from the active run (or ``run_id``); an error if it has no such tag."""
    store, run_id = _target(run_id)
    if key not in store.get_run(run_id).get("tags", {}):
        raise NotFoundError(f"No tag with name: {key!r} in run with id {run_id}.")
    store.append(run_id, [{"op": "untag", "key": key}])


def _target(run_id: str | None) -> tuple[Store, str]:
    if run_id is None:
        run = _get_or_start_run()
        return run._store, run.run_id
    return current_store(), run_id


# -- artifacts -------------------------------------------------------------------------------


def log_artifact(
    local_path: str | os.PathLike[str], artifact_path: str | None = None, run_id=None
) -> None:
    """Copy a file into the run's artifacts (under ``artifact_path`` if given)."""
    from nbtrack.store.artifacts import relative_path

    source = Path(local_path)
    if not source.is_file():
        raise InvalidParameterError(f"log_artifact: {source} is not a file.")
    folder = relative_path(artifact_path) if artifact_path else ""
    store, target = _target(run_id)
    store.add_artifact(target, _join(folder, source.name), source)


def log_artifacts(
    local_dir: str | os.PathLike[str], artifact_path: str | None = None, run_id=None
) -> None:
    """Copy every file under a directory into the run's artifacts."""
    from nbtrack.store.artifacts import copy_tree_entries, relative_path

    folder = relative_path(artifact_path) if artifact_path else ""
    store, target = _target(run_id)
    for source, relative in copy_tree_entries(Path(local_dir)):
        store.add_artifact(target, _join(folder, relative), source)


def log_text(text: str, artifact_file: str, run_id=None) -> None:
    """Save ``text`` as a UTF-8 file artifact."""
    from nbtrack.store.artifacts import relative_path

    relative = relative_path(artifact_file, "artifact_file")
    store, target = _target(run_id)
    store.add_artifact(target, relative, str(text).encode("utf-8"))


def log_dict(dictionary: dict[str, Any], artifact_file: str, run_id=None) -> None:
    """Save a dict as JSON, or YAML when ``artifact_file`` ends in .yaml/.yml."""
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        text = yaml.safe_dump(dictionary, indent=2, default_flow_style=False, sort_keys=False)
    else:
        import json

        text = json.dumps(dictionary, indent=2)
    log_text(text, artifact_file, run_id=run_id)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    from nbtrack.store.artifacts import relative_path

    run = _get_or_start_run()
    base = run._store.artifact_uri(run.run_id)
    return f"{base}/{relative_path(artifact_path)}" if artifact_path else base


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


# -- datasets ----------------------------------------------------------------------------------


def log_input(
    dataset: Any = None,
    context: str | None = None,
    tags: dict[str, Any] | None = None,
    model: Any = None,
) -> None:
    """Record a dataset the active run used, as MLflow's ``log_input``.

    Parameters
    ----------
    dataset
        From :func:`nbtrack.data.from_pandas` / :func:`~nbtrack.data.from_numpy`, or an
        ``mlflow.data`` dataset: its name, digest, source, schema and profile are kept.
    context
        How the data was used ("training", "eval", ...): the ``mlflow.data.context`` tag.
    tags
        More input tags. Logging the same dataset with the same tags again is a no-op.
    model
        Accepted for MLflow compatibility and ignored (model inputs are not tracked).
    """
    if dataset is None:
        return
    from nbtrack.data import record_for

    record = record_for(dataset, context, tags)
    store, run_id = _target(None)
    _append_input(store, run_id, record)


def _append_input(store: Store, run_id: str, record: dict[str, Any]) -> bool:
    """Append an input record unless the run has it already; True if appended."""
    from nbtrack.data import input_key

    key = input_key(record)
    with _state_lock:
        if (store.root, run_id, key) in _known_inputs:  # e.g. each predict() on the same data
            return False
        logged = [input_key(r) for r in _input_records(store, run_id)]
        _known_inputs.update((store.root, run_id, k) for k in logged)
        if key in logged:
            return False
        store.append(run_id, [{**record, "n": len(logged) + 1}])
        _known_inputs.add((store.root, run_id, key))
    return True


def _input_records(store: Store, run_id: str) -> list[dict[str, Any]]:
    from nbtrack.store.journal import read_records

    return list(read_records(store.journal_path(run_id), b'{"op":"input",'))


def _dataset_inputs(run_id: str) -> tuple:
    from nbtrack.data import inputs_from_records

    return inputs_from_records(_input_records(current_store(), run_id))


# -- reading -----------------------------------------------------------------------------------


def get_run(run_id: str) -> Run:
    row = current_store().get_run(run_id)
    run = run_from_row(row)
    if row.get("inputs"):  # the datasets live in the journal; the row only counts them
        run = run._replace(inputs=RunInputs(_dataset_inputs(run_id)))
    return run


def get_metric_history(run_id: str, key: str) -> MetricHistory:
    """Every point logged for ``key`` in the run, oldest first."""
    steps, values, timestamps = current_store().metric_history(run_id, key)
    return MetricHistory(key, steps, values, timestamps)


def delete_run(run_id: str) -> None:
    """Soft-delete a run: hidden from searches, kept on disk, restorable."""
    current_store().set_lifecycle(run_id, "deleted")
    for run in _active:
        if run.run_id == run_id:  # refuse its metrics at once, as MLflow does
            run._use_buffer(_DeletedRunBuffer(run_id))


def restore_run(run_id: str) -> None:
    current_store().set_lifecycle(run_id, "active")
    for run in _active:
        if run.run_id == run_id:
            run._use_buffer([])


class _DeletedRunBuffer(list):
    """The metric buffer of a deleted run: every append is refused."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def append(self, point: object) -> None:
        raise RunStateError(
            f"Run '{self.run_id}' is deleted; restore it (restore_run) before logging to it."
        )

    def extend(self, points: object) -> None:
        self.append(points)


def flush() -> None:
    """Return once every point logged so far is durable on disk."""
    for store in list(_stores.values()):
        store.flush(durable=True)


def flush_buffers() -> None:
    """Write the active runs' buffered points (not fsynced): what a cell's end does."""
    for run in _active:
        run._writer.flush()


def _unflushed_points(run_id: str) -> tuple[int, list] | None:
    """For live panels: the journal's length and a copy of the points not yet written to it.

    Both are read under the writer's lock, so a background flush cannot move points from
    the buffer to the journal in between: each point is in exactly one of the two. None
    when this process has no open writer for the run. ``log_metric`` never takes that lock.
    """
    store = current_store()
    writer = store.writer(run_id)
    if writer is None:
        return None
    with writer._lock:
        try:
            size = os.stat(store.journal_path(run_id)).st_size
        except FileNotFoundError:
            size = 0
        return size, writer.points[:]


class TrackingStatus(NamedTuple):
    """What ``%track`` prints: where runs go and what is active."""

    store: str
    experiment: str
    active_run: str | None
    cells_tracked: bool

    def __repr__(self) -> str:
        return "\n".join(
            [
                f"store:      {self.store}",
                f"experiment: {self.experiment}",
                f"active run: {self.active_run or '-'}",
                f"track every cell: {'on' if self.cells_tracked else 'off'}",
            ]
        )


def status() -> TrackingStatus:
    """The store, active experiment and active run (``%track`` with no arguments)."""
    experiment = get_experiment(_current_experiment_id())
    run = active_run()
    return TrackingStatus(
        store=get_tracking_uri(),
        experiment=f"{experiment.name} (id {experiment.experiment_id})",
        active_run=f"{run.info.run_name} ({run.run_id})" if run else None,
        cells_tracked=_run_factory is not None,
    )


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = 100_000,
    order_by: Sequence[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: Sequence[str] | None = None,
) -> pd.DataFrame | list[Run]:
    """Search runs with MLflow's filter grammar; a DataFrame like MLflow's by default."""
    hits = _search(
        experiment_ids,
        filter_string,
        run_view_type,
        max_results,
        order_by,
        search_all_experiments,
        experiment_names,
    )
    if output_format == "list":
        return [run_from_row(r) for r in hits.rows()]
    if output_format != "pandas":
        raise InvalidParameterError(f"output_format={output_format!r}: use 'pandas' or 'list'.")
    from nbtrack.tracking.frames import hits_dataframe

    return hits_dataframe(hits)


def search_rows(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    order_by: Sequence[str] | None = None,
    search_all_experiments: bool = False,
    experiment_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """:func:`search_runs` returning catalog rows, for the panels and the CLI."""
    return _search(
        experiment_ids,
        filter_string,
        run_view_type,
        max_results,
        order_by,
        search_all_experiments,
        experiment_names,
    ).rows()


def _search(
    experiment_ids: Sequence[str] | None,
    filter_string: str,
    run_view_type: int,
    max_results: int | None,
    order_by: Sequence[str] | None,
    search_all_experiments: bool,
    experiment_names: Sequence[str] | None,
) -> RunHits:
    ids = _experiment_ids(experiment_ids, experiment_names, search_all_experiments)
    view = {ViewType.ACTIVE_ONLY: "active", ViewType.ALL: "all"}.get(run_view_type, "deleted")
    return current_store().search(ids, filter_string, view, order_by, max_results)


def _experiment_ids(
    ids: Sequence[str] | None, names: Sequence[str] | None, search_all: bool
) -> set[str] | None:
    if ids and names:
        raise InvalidParameterError("Pass experiment_ids or experiment_names, not both.")
    if ids:
        return {str(i) for i in ids}
    if names:
        store = current_store()
        found = [store.get_experiment_by_name(n) for n in names]
        return {e["experiment_id"] for e in found if e is not None}
    if search_all:
        return None
    return {_current_experiment_id()}


def _visible(stage: str, view_type: int) -> bool:
    if view_type == ViewType.ALL:
        return True
    return (stage == "active") == (view_type == ViewType.ACTIVE_ONLY)


# -- process exit ----------------------------------------------------------------------------


@atexit.register
def _at_exit() -> None:
    """End runs left active as FINISHED (as MLflow does) and make everything durable."""
    while _active:
        with contextlib.suppress(Exception):  # keep ending the others; exit must not fail
            _end(_active.pop(), RunStatus.FINISHED)
    for store in list(_stores.values()):
        store.close()
