"""The run session: where runs go, which runs are open, and the one way a run ends.

A :class:`Session` owns the store its tracking URI names, the experiment runs start in,
the active-run stack, runs started but not active (``%track on``'s session run, an
autologged fit's own run), the hooks provenance features register, and the inputs known
to be logged. ``fluent.py`` is MLflow's functions over a default session; an
``MlflowClient`` has a session of its own. Every session on one folder shares the
process's one :class:`~nbtrack.store.Store` for it (:func:`open_store`).
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from nbtrack.entities import Run, RunData, RunInfo, RunStatus, run_from_row
from nbtrack.errors import InvalidParameterError, RunStateError, StoreError
from nbtrack.store import DEFAULT_EXPERIMENT_ID, RunWriter, Store
from nbtrack.store.records import input_record, tags_record
from nbtrack.tracking import context, inputs
from nbtrack.tracking.identity import current_user
from nbtrack.tracking.names import random_run_name
from nbtrack.validation import check_experiment_name, check_tag_value

DEFAULT_STORE_DIR = ".nbtrack"
NBTRACK_SCHEME = "nbtrack"  # tracking URIs nbtrack:///abs/path, nbtrack:rel/path, nbtrack:

StartHook = Callable[["ActiveRun", bool], None]  # (run, resumed), once the run is active
EndHook = Callable[[str, str], None]  # (run_id, status), before the store finishes it


class ActiveRun:
    """A run this process logs to; as a context manager it ends the run on exit.

    On a clean exit the run is FINISHED; on an exception FAILED; on KeyboardInterrupt
    KILLED. ``info`` and ``data`` are read from the store each time, so they are current.
    """

    def __init__(self, session: Session, writer: RunWriter) -> None:
        self.session = session
        self.writer = writer  # its ``points`` list is log_metric's buffer
        self.run_id = writer.run_id
        self.log_system_metrics = False  # start_run decides

    @property
    def store(self) -> Store:
        return self.writer.store

    @property
    def info(self) -> RunInfo:
        return self.snapshot().info

    @property
    def data(self) -> RunData:
        return self.snapshot().data

    # MLflow's entities keep these as private attributes, and code in the wild (MLflow's
    # own examples among it) reads them.
    _info = info
    _data = data

    def snapshot(self) -> Run:
        """The run as it is now in the store."""
        return run_from_row(self.store.get_run(self.run_id))

    def to_dictionary(self) -> dict[str, Any]:
        return self.snapshot().to_dictionary()

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.session.end(self, status_for(exc_type))

    def __repr__(self) -> str:
        return f"<ActiveRun: run_id={self.run_id}>"


def status_for(error_type: type[BaseException] | None) -> str:
    """The status a run ends with when its block or cell raised ``error_type`` (or not)."""
    if error_type is None:
        return RunStatus.FINISHED
    return RunStatus.KILLED if issubclass(error_type, KeyboardInterrupt) else RunStatus.FAILED


class Session:
    """Runs for one tracking URI (None: ``$NBTRACK_TRACKING_URI``, ``$NBTRACK_DIR`` or
    ``.nbtrack`` in the working directory, looked up on each use)."""

    def __init__(self, tracking_uri: str | os.PathLike[str] | None = None) -> None:
        self._path = path_from_uri(tracking_uri) if tracking_uri is not None else None
        self.active: list[ActiveRun] = []  # nested runs sit above their parent
        self._open: dict[str, ActiveRun] = {}  # started here, not on the stack
        self.run_start_hooks: list[StartHook] = []
        self.run_end_hooks: list[EndHook] = []
        # Which run starts when logging finds none active: the magics' %track on makes
        # it the cell's child run instead of one that outlives the cell.
        self.run_factory: Callable[[], ActiveRun | None] | None = None
        self.last_run_id: str | None = None
        # start_run's default, as MLflow's enable_system_metrics_logging() sets it.
        self._log_system_metrics: bool | None = None
        self._experiment_id: str | None = None
        self._experiment_name: str | None = None  # to find it again in another store
        # Inputs known to be in a run's journal: journals only grow, so a key seen stays
        # true and logging it again needs no journal read.
        self._known_inputs: set[tuple[Path, str, tuple]] = set()
        self._lock = threading.RLock()

    @property
    def log_system_metrics(self) -> bool:
        """Whether runs record system metrics unless start_run says: as set, else MLflow's
        ``$MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``."""
        if self._log_system_metrics is not None:
            return self._log_system_metrics
        flag = os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "")
        return flag.strip().lower() in ("true", "1")

    @log_system_metrics.setter
    def log_system_metrics(self, on: bool | None) -> None:
        self._log_system_metrics = on

    # -- where runs go ---------------------------------------------------------------------

    @property
    def store_path(self) -> Path:
        if self._path is not None:
            return self._path
        for variable in ("NBTRACK_TRACKING_URI", "NBTRACK_DIR"):
            if os.environ.get(variable):
                return _resolved(os.environ[variable], os.getcwd())
        return _resolved(DEFAULT_STORE_DIR, os.getcwd())

    @property
    def store(self) -> Store:
        return open_store(self.store_path)

    @property
    def tracking_uri(self) -> str:
        return self.store_path.as_uri()

    def set_tracking_uri(self, uri: str | os.PathLike[str]) -> None:
        path = path_from_uri(uri)  # None: the default store, looked up on each use
        if self.active:
            raise RunStateError(
                f"Run '{self.active[-1].run_id}' is active; end it before switching to "
                f"store {path or os.fspath(uri)}."
            )
        self._path = path
        self._experiment_id = None  # ids belong to a store; the name is looked up anew

    # -- the experiment runs start in ----------------------------------------------------------

    def set_experiment(self, name: str | None = None, experiment_id: str | None = None) -> dict:
        """Make an experiment current (by name, created if missing, or by id); its row."""
        if (name is None) == (experiment_id is None):
            raise InvalidParameterError("Pass exactly one of experiment_name or experiment_id.")
        if name is not None:
            name = check_experiment_name(name)
        store = self.store
        if name is not None:
            row = store.get_or_create_experiment(name)
        else:
            row = store.get_experiment(str(experiment_id))
        if row["lifecycle_stage"] != "active":
            raise RunStateError(
                f"Experiment '{row['name']}' is deleted; restore it with restore_experiment() "
                "or choose another name."
            )
        self._experiment_id, self._experiment_name = row["experiment_id"], row["name"]
        return row

    @property
    def experiment_id(self) -> str:
        """The current experiment: set here, else named by ``$NBTRACK_EXPERIMENT_NAME`` or
        ``$MLFLOW_EXPERIMENT_NAME``, else the default one."""
        if self._experiment_id is not None:
            return self._experiment_id
        name = (
            self._experiment_name
            or os.environ.get("NBTRACK_EXPERIMENT_NAME")
            or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        )
        if name:
            return self.set_experiment(name)["experiment_id"]
        return DEFAULT_EXPERIMENT_ID

    # -- starting runs -------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str | None = None,
        experiment_id: str | None = None,
        run_name: str | None = None,
        nested: bool = False,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        log_system_metrics: bool | None = None,
    ) -> ActiveRun:
        """Start a run (or resume ``run_id``), make it active and call the start hooks.

        ``tags`` must be checked already (``validation.check_tags``). The run records
        system metrics if ``log_system_metrics`` (None: :attr:`log_system_metrics`).
        Outside any run, ``$NBTRACK_RUN_ID`` names a run scheduled for this process
        (``nbtrack run``), which is resumed.
        """
        if self.active and not nested:
            raise RunStateError(
                f"Run with UUID {self.active[-1].run_id} is already active. To start a new "
                "run, first end the current run with nbtrack.end_run(). To start a nested "
                "run, call start_run() with nested=True."
            )
        tags = tags or {}
        store = self.store
        if run_id is None and not self.active:
            run_id = os.environ.get("NBTRACK_RUN_ID")  # a run scheduled for this process
        if run_id is not None:
            writer = store.resume_run(run_id)
            if tags:
                writer.write(tags_record(tags))
        else:
            if parent_run_id is None and nested and self.active:
                parent_run_id = self.active[-1].run_id
            name = run_name or tags.get("mlflow.runName") or random_run_name()
            writer = self.create_run(experiment_id, name, tags, parent_run_id, description)
        run = ActiveRun(self, writer)
        if log_system_metrics is None:
            log_system_metrics = self.log_system_metrics
        run.log_system_metrics = log_system_metrics
        with self._lock:
            self.active.append(run)
            self.last_run_id = run.run_id
        hooks = [*context.start_observers(), *self.run_start_hooks]
        self._call(hooks, run, run_id is not None)
        return run

    def create_run(
        self,
        experiment_id: str | None,
        name: str,
        tags: dict[str, str],
        parent_run_id: str | None = None,
        description: str | None = None,
        start_time: int | None = None,
        store: Store | None = None,
    ) -> RunWriter:
        """A RUNNING run with MLflow's system tags, the run context and ``tags``, in
        ``experiment_id`` (None: the current experiment) of ``store`` (None: the
        session's). It is not made active and no hook runs: :meth:`start_run` does both,
        for runs this process works in."""
        store = store or self.store
        found = context.collect(store)
        system = system_tags(name, parent_run_id, description)
        writer = store.create_run(
            experiment_id if experiment_id is not None else self.experiment_id,
            run_name=name,
            user_id=tags.get("mlflow.user", system["mlflow.user"]),
            tags={**system, **found.tags, **tags},
            start_time=start_time,
        )
        for record in found.records:
            writer.write(record)
        return writer

    def adopt(self, writer: RunWriter, resumed: bool = False) -> ActiveRun:
        """Open here, not active, a run another API created or resumed (MLflow's own
        ``start_run``, through nbtrack's plugin): the start hooks run as for
        :meth:`start_run`, and :meth:`end` ends it as any run started here."""
        run = ActiveRun(self, writer)
        with self._lock:
            self._open[run.run_id] = run
            self.last_run_id = run.run_id
        self._call([*context.start_observers(), *self.run_start_hooks], run, resumed)
        return run

    def detach(self, run: ActiveRun) -> None:
        """Take a run off the active stack but keep it open here (a parent that is never
        the active run, or a run a background thread will end)."""
        with self._lock:
            if run in self.active:
                self.active.remove(run)
                self._open[run.run_id] = run

    # -- which run to log to -----------------------------------------------------------------

    def active_run(self) -> ActiveRun | None:
        return self.active[-1] if self.active else None

    def run_to_log(self) -> ActiveRun:
        """The active run, else the run factory's, else a new run (as MLflow's fluent
        logging starts one)."""
        if self.active:
            return self.active[-1]
        if self.run_factory is not None:
            run = self.run_factory()
            if run is not None:
                return run
        return self.start_run()

    def open_run(self, run_id: str) -> ActiveRun | None:
        """The run with this id if this session has it open (active or not)."""
        for run in self.active:
            if run.run_id == run_id:
                return run
        return self._open.get(run_id)

    def target(self, run_id: str | None) -> tuple[Store, str]:
        """Where a logging call with ``run_id`` writes: that run, else the run to log to."""
        if run_id is None:
            run = self.run_to_log()
            return run.store, run.run_id
        return self.store, run_id

    # -- ending runs ------------------------------------------------------------------------

    def end(self, run: ActiveRun | str, status: str) -> None:
        """End a run this session started, and every run active above it: the end hooks
        run, then the store records ``status``. Nothing happens if it has ended already."""
        run_id = run if isinstance(run, str) else run.run_id
        with self._lock:
            ending, detached = [], run_id in self._open
            if detached:
                ending.append(self._open.pop(run_id))
            elif any(r.run_id == run_id for r in self.active):
                while self.active:
                    ending.append(self.active.pop())
                    if ending[-1].run_id == run_id:
                        break
        hooks = [*self.run_end_hooks, *context.end_observers()]
        for index, ended in enumerate(ending):
            self._call(hooks, ended.run_id, status)
            try:
                ended.store.finish_run(ended.run_id, status)
            except StoreError:  # e.g. a full disk: the run stays open, to be ended again
                with self._lock:
                    if detached:
                        self._open[run_id] = ended
                    else:
                        self.active.extend(reversed(ending[index:]))
                raise

    def end_run(self, status: str = RunStatus.FINISHED) -> None:
        """End the innermost active run."""
        if status not in RunStatus.all_status() or status == RunStatus.RUNNING:
            raise InvalidParameterError(
                f"end_run(status={status!r}): use FINISHED, FAILED or KILLED."
            )
        if self.active:
            self.end(self.active[-1], status)

    def close(self, status: str = RunStatus.FINISHED) -> None:
        """End every run still open here (active ones innermost first) with ``status``.

        It runs at exit too, so it ends what it can: a run whose store cannot write (a full
        disk) is left for the store's own close to report, once.
        """
        while self.active or self._open:
            run = self.active[-1] if self.active else next(iter(self._open.values()))
            try:
                self.end(run, status)
            except Exception as error:
                if not isinstance(error, StoreError):
                    warnings.warn(f"nbtrack could not end run {run.run_id}: {error}", stacklevel=2)
                with self._lock:
                    if run in self.active:
                        self.active.remove(run)
                    self._open.pop(run.run_id, None)

    # -- logging ------------------------------------------------------------------------------

    def add_input(
        self, store: Store, run_id: str, fields: dict[str, Any], input_tags: dict[str, str]
    ) -> bool:
        """Record a dataset input (as ``inputs.describe`` gives it) unless the run has the
        same one; True if it was added."""
        key = inputs.input_key(fields, input_tags)
        with self._lock:
            if (store.root, run_id, key) in self._known_inputs:  # e.g. each predict()
                return False
            logged = [
                inputs.input_key(r["dataset"], r["tags"]) for r in store.records(run_id, "input")
            ]
            self._known_inputs.update((store.root, run_id, k) for k in logged)
            if key in logged:
                return False
            store.append(run_id, [input_record(fields, input_tags, len(logged) + 1)])
            self._known_inputs.add((store.root, run_id, key))
        return True

    def flush_buffers(self) -> None:
        """Write the active runs' buffered points (not fsynced): what a cell's end does."""
        for run in list(self.active):
            run.writer.flush()

    def _call(self, hooks: list[Callable[..., None]], *args: Any) -> None:
        for hook in list(hooks):
            try:
                hook(*args)
            except Exception as error:  # provenance must never break the run it describes
                warnings.warn(f"nbtrack hook {hook!r} failed: {error!r}", stacklevel=3)


def system_tags(name: str, parent_run_id: str | None, description: str | None) -> dict:
    """MLflow's system tags of a new run (the run context adds its source)."""
    tags = {"mlflow.runName": name, "mlflow.user": current_user()}
    if parent_run_id is not None:
        tags["mlflow.parentRunId"] = parent_run_id
    if description:
        tags["mlflow.note.content"] = check_tag_value("mlflow.note.content", description)
    return tags


# -- stores ---------------------------------------------------------------------------------

_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def open_store(path: Path) -> Store:
    """The process's one Store for a folder, opened on first use."""
    store = _stores.get(path)
    if store is None:
        with _stores_lock:
            store = _stores.get(path)
            if store is None:
                store = _stores[path] = Store(path)
    return store


def close_stores() -> list[StoreError]:
    """Flush and close every store this process opened (the next use reopens them); the
    errors of those that could not write everything, each closed as far as it could be."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    errors = []
    for store in stores:
        try:
            store.close()
        except StoreError as error:
            errors.append(error)
    return errors


def open_stores() -> list[Store]:
    return list(_stores.values())


def path_from_uri(uri: str | os.PathLike[str]) -> Path | None:
    """A store folder from a path, a ``file:`` URI or an ``nbtrack:`` URI
    (``nbtrack:///absolute/path``, ``nbtrack:relative/path``); None for ``nbtrack:`` alone,
    which names the default store."""
    text = os.fspath(uri)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return Path(unquote(parsed.netloc + parsed.path) or ".").expanduser().resolve()
    if parsed.scheme == NBTRACK_SCHEME:
        if parsed.netloc:
            raise InvalidParameterError(
                f"Tracking URI {text!r} names a host; nbtrack stores are folders on this "
                "machine: write nbtrack:///absolute/path or nbtrack:relative/path."
            )
        path = unquote(parsed.path)
        return Path(path).expanduser().resolve() if path else None
    if parsed.scheme and len(parsed.scheme) > 1:  # a one-letter scheme is a Windows drive
        raise InvalidParameterError(
            f"Tracking URI {text!r} is not supported: nbtrack stores runs in a folder. "
            "Pass a folder path, a file: URI or an nbtrack: URI."
        )
    return Path(text).expanduser().resolve()


@functools.lru_cache(maxsize=16)
def _resolved(uri: str, cwd: str) -> Path:
    """A relative store path is relative to the working directory, hence the key."""
    return path_from_uri(uri) or _resolved(DEFAULT_STORE_DIR, cwd)
