"""The store: a folder of per-run journals (the truth) indexed by a TinyDB catalog.

::

    <root>/
      catalog.snapshot, catalog.log  the index (see catalog.py); rebuildable from the rest
      catalog.json                a stub that makes older nbtrack versions refuse the store
      created.log                 every run id, appended just before its folder is made
      experiments.jsonl           experiment records, appended under the store lock
      registry.jsonl              model registry events, appended under the store lock
      runs/<run_id>/journal.jsonl every record of one run, append-only
      runs/<run_id>/artifacts/    the run's files
      trash/<run_id>/             a purged run's folder until gc has deleted it (purge.py)
      store.lock                  the inter-process lock

Opening a store reads the catalog's small head and what changed since its last
snapshot, never every run: runs whose process died and runs the catalog never heard of
are found from that (see recovery.py). A store this process cannot write to is opened
read-only: everything reads, and every write raises StoreReadOnlyError.
"""

from __future__ import annotations

import errno
import functools
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from tinydb import TinyDB
from tinydb.table import Table

from nbtrack.errors import (
    InvalidParameterError,
    NotFoundError,
    RunStateError,
    StoreReadOnlyError,
    StoreWriteError,
)
from nbtrack.store import artifacts, purge, recovery
from nbtrack.store.catalog import CatalogDamagedWarning, CatalogStorage
from nbtrack.store.journal import Journal, read_lines_after, read_records, repair_tail
from nbtrack.store.locking import StoreLock
from nbtrack.store.procs import current_process, is_alive
from nbtrack.store.records import (
    Record,
    artifact_record,
    create_record,
    fields_record,
    line_prefix,
    metric_columns,
    metric_records,
    params_record,
    tags_record,
    to_patch,
    untag_record,
)
from nbtrack.store.rows import RunRow
from nbtrack.store.writer import Flusher, RunWriter, journal_write_error, record_not_written

if TYPE_CHECKING:
    from collections.abc import Collection

    from nbtrack.store.columns import RunColumns
    from nbtrack.store.query import RunHits
    from nbtrack.store.records import MetricColumns
    from nbtrack.store.registry import RegistryStore

RUNS = "runs"
EXPERIMENTS = "experiments"
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
JOURNAL_NAME = "journal.jsonl"
CREATED_NAME = "created.log"
ACTIVE, DELETED = "active", "deleted"
_READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


class _CatalogTable(Table):
    """A TinyDB table over the catalog: string ids, and no query cache, because the
    catalog changes underneath TinyDB (staged patches, other processes' commits)."""

    document_id_class = str

    def __init__(self, storage, name: str, cache_size: int = 0, persist_empty: bool = False):
        super().__init__(storage, name, cache_size=0, persist_empty=persist_empty)


class _CatalogDB(TinyDB):
    table_class = _CatalogTable


class Store:
    """Open (creating if needed) the store in ``root``.

    Opening a store on the host where a RUNNING run's process has died marks that
    run KILLED, so a crashed kernel never leaves a run that looks alive. A damaged
    catalog is rebuilt from the journals, with a warning.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self._root_uri = self.root.as_uri().rstrip("/")
        self.writable = _open_folder(self.root)
        self.lock = StoreLock(self.root / "store.lock")
        self.catalog = CatalogStorage(
            self.root,
            self.lock,
            writable=self.writable,
            on_damage=self._rebuild_damaged_catalog,
            summarize=functools.partial(recovery.summarize, self),
        )
        self._writers: dict[str, RunWriter] = {}
        self._unsynced: set[Path] = set()  # closed journals not yet fsynced
        self._writers_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._flusher: Flusher | None = None
        self._db: TinyDB | None = None
        self._created_fd = -1
        self._ensure_initialized()
        if self.catalog.needs_migration and self.writable:
            self.catalog.migrate()
        recovery.index_unknown_runs(self)
        recovery.reap_dead_runs(self)

    def check_writable(self) -> None:
        """Raise StoreReadOnlyError if this process cannot write to the store."""
        if not self.writable:
            raise StoreReadOnlyError(
                f"The store {self.root} is read-only here: its runs can be read (search_runs, "
                "get_run, runs_table, nbtrack runs) but nothing can be logged to it. "
                "Log to a store you can write to (set_tracking_uri, %track store, NBTRACK_DIR)."
            )

    def _rebuild_damaged_catalog(self, damage: str) -> None:
        warnings.warn(
            f"nbtrack: the catalog of the store {self.root} is damaged ({damage}); "
            "rebuilding it from the run journals, which hold every run.",
            CatalogDamagedWarning,
            stacklevel=2,
        )
        recovery.rebuild(self)

    @property
    def db(self) -> TinyDB:
        """The catalog as a TinyDB database, for ad-hoc queries (read-only use)."""
        if self._db is None:
            self._db = _CatalogDB(storage=lambda: self.catalog)
        return self._db

    def _ensure_initialized(self) -> None:
        if self.catalog.get(EXPERIMENTS, DEFAULT_EXPERIMENT_ID) is not None:
            return
        if not self.writable:
            self._initialize_in_memory()
            return
        with self.lock:
            if self.catalog.get(EXPERIMENTS, DEFAULT_EXPERIMENT_ID) is not None:
                return
            if self.run_ids_on_disk() or self.experiments_journal.exists():
                recovery.rebuild(self, progress=False)  # a store whose catalog was lost
            else:
                recovery.mark_all_runs_indexed(self)  # a new store: there are none
            if self.catalog.get(EXPERIMENTS, DEFAULT_EXPERIMENT_ID) is None:
                default = _new_experiment(DEFAULT_EXPERIMENT_NAME, DEFAULT_EXPERIMENT_ID)
                self._append_experiment(DEFAULT_EXPERIMENT_ID, default)
            self.catalog.write(self.catalog.read() or {})

    def _initialize_in_memory(self) -> None:
        """A read-only store without a usable catalog: derive one for this process."""
        recovery.rebuild(self, progress=False)
        if self.catalog.get(EXPERIMENTS, DEFAULT_EXPERIMENT_ID) is None:
            default = _new_experiment(DEFAULT_EXPERIMENT_NAME, DEFAULT_EXPERIMENT_ID)
            self.catalog.stage(EXPERIMENTS, DEFAULT_EXPERIMENT_ID, default)

    # -- paths --------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.root / RUNS / run_id

    def journal_path(self, run_id: str) -> Path:
        return self.root / RUNS / run_id / JOURNAL_NAME

    def artifact_dir(self, run_id: str) -> Path:
        return self.root / _artifacts_in_root(run_id)

    @property
    def experiments_journal(self) -> Path:
        return self.root / "experiments.jsonl"

    @property
    def created_log(self) -> Path:
        """Run ids in the order their runs were created (see recovery.index_unknown_runs)."""
        return self.root / CREATED_NAME

    @functools.cached_property
    def registry(self) -> RegistryStore:
        """The model registry's events and their fold (see registry.py)."""
        from nbtrack.store.registry import RegistryStore

        return RegistryStore(self)

    def run_ids_on_disk(self) -> list[str]:
        with os.scandir(self.root / RUNS) as entries:
            return [e.name for e in entries if os.path.exists(os.path.join(e.path, JOURNAL_NAME))]

    # -- experiments ----------------------------------------------------------------------

    def experiments(self) -> list[dict[str, Any]]:
        return sorted(self.catalog.documents(EXPERIMENTS), key=lambda e: int(e["experiment_id"]))

    def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        experiment = self.catalog.get(EXPERIMENTS, str(experiment_id))
        if experiment is None:
            raise NotFoundError(f"No experiment with id '{experiment_id}' in {self.root}.")
        return experiment

    def get_experiment_by_name(self, name: str) -> dict[str, Any] | None:
        for experiment in self.catalog.documents(EXPERIMENTS):
            if experiment["name"] == name:
                return dict(experiment)
        return None

    def create_experiment(self, name: str, tags: dict[str, str] | None = None) -> str:
        """Create an experiment and return its id; names are unique, deleted ones included."""
        with self.lock:
            existing = self.get_experiment_by_name(name)
            if existing is not None:
                state = " (deleted; restore it or pick another name)" * (
                    existing["lifecycle_stage"] == DELETED
                )
                raise InvalidParameterError(
                    f"Experiment '{name}' already exists{state} with id "
                    f"'{existing['experiment_id']}'."
                )
            ids = [int(e["experiment_id"]) for e in self.catalog.documents(EXPERIMENTS)]
            experiment_id = str(max(ids, default=-1) + 1)
            self._append_experiment(experiment_id, _new_experiment(name, experiment_id, tags))
        return experiment_id

    def get_or_create_experiment(self, name: str) -> dict[str, Any]:
        """The experiment called ``name``, created if missing, atomically across processes."""
        existing = self.get_experiment_by_name(name)
        if existing is not None:
            return existing
        with self.lock:
            existing = self.get_experiment_by_name(name)
            if existing is None:
                return self.get_experiment(self.create_experiment(name))
            return existing

    def update_experiment(self, experiment_id: str, **fields: Any) -> None:
        """Change an experiment's name, lifecycle_stage or tags (``tags=`` merges,
        ``untag=`` a list of keys removes)."""
        with self.lock:
            self.get_experiment(experiment_id)
            if "name" in fields:
                other = self.get_experiment_by_name(fields["name"])
                if other is not None and other["experiment_id"] != experiment_id:
                    raise InvalidParameterError(f"Experiment '{fields['name']}' already exists.")
            tags, untag = fields.pop("tags", None), fields.pop("untag", None)
            patch: dict[str, Any] = {"set": {**fields, "last_update_time": _now_ms()}}
            if tags:
                patch["tags"] = tags
            if untag:
                patch["untag"] = list(untag)
            self._append_experiment(experiment_id, patch)

    def _append_experiment(self, experiment_id: str, patch: dict[str, Any]) -> None:
        self.check_writable()
        with self.lock:
            repair_tail(self.experiments_journal)
            with Journal(self.experiments_journal) as journal:
                journal.append({"id": experiment_id, "patch": patch})
            self.catalog.stage(EXPERIMENTS, experiment_id, patch)
            self.catalog.commit()

    # -- runs: creating and writing ---------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str,
        user_id: str,
        tags: dict[str, str],
        start_time: int | None = None,
    ) -> RunWriter:
        """Start a RUNNING run and return its writer."""
        self.check_writable()
        experiment = self.get_experiment(experiment_id)
        if experiment["lifecycle_stage"] != ACTIVE:
            raise RunStateError(
                f"Experiment '{experiment['name']}' is deleted; restore it to add runs."
            )
        run_id = uuid.uuid4().hex
        self._note_created(run_id)
        self.run_dir(run_id).mkdir()
        row = {
            "run_id": run_id,
            "experiment_id": experiment["experiment_id"],
            "run_name": run_name,
            "status": "RUNNING",
            "start_time": start_time if start_time is not None else _now_ms(),
            "end_time": None,
            "lifecycle_stage": ACTIVE,
            "user_id": user_id,
            "tags": tags,
            "process": current_process(),
        }
        # A new id: no snapshot can hold it, so reading its row reads no snapshot.
        self.catalog.stage(
            RUNS, run_id, {"set": {"artifact_uri": self.artifact_uri(run_id)}}, new=True
        )
        writer = self._open_writer(run_id)
        writer.write(create_record(row))
        # Other processes see the run at the background thread's next commit (within a
        # second); if this process dies first, the next Store() indexes it from its journal.
        return writer

    def _note_created(self, run_id: str) -> None:
        """Append the id to created.log, so a run whose catalog row was never committed
        is found without listing every run's folder."""
        with self._writers_lock:
            if self._created_fd < 0:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                self._created_fd = os.open(self.created_log, flags, 0o644)
            os.write(self._created_fd, f"{run_id} {_now_ms()}\n".encode())

    def import_run(self, row: RunRow, records: list[Record]) -> None:
        """Add a finished run made elsewhere, keeping its id: ``row`` is its whole row
        (``run_id``, ``experiment_id``, name, status, times, user, tags; ``remote``, where
        it came from, makes it read-only) and ``records`` the rest of its journal (params,
        metrics...). The journal is written in one append and the run indexed at once."""
        self.check_writable()
        run_id = row["run_id"]
        if not _is_run_id(run_id):
            raise InvalidParameterError(f"Run id {run_id!r} is not 32 hexadecimal characters.")
        self.get_experiment(row["experiment_id"])
        all_records = [create_record(dict(row)), *records]
        with self.lock:
            if self.run_dir(run_id).exists():
                raise FileExistsError(f"Run {run_id} is already in {self.root}.")
            self._note_created(run_id)
            self.run_dir(run_id).mkdir()
            with Journal(self.journal_path(run_id)) as journal:
                journal.append_many(all_records)
            for record in all_records:
                patch = to_patch(record)
                if patch is not None:
                    self.catalog.stage(RUNS, run_id, patch)
            uri = {"set": {"artifact_uri": self.artifact_uri(run_id)}}
            self.catalog.stage(RUNS, run_id, uri, new=True)  # no snapshot holds it
            self.catalog.commit()

    def resume_run(self, run_id: str) -> RunWriter:
        """Reopen an existing run for logging and mark it RUNNING again (MLflow's resume)."""
        self.check_writable()
        row = self.get_run(run_id)
        if row["lifecycle_stage"] != ACTIVE:
            raise RunStateError(f"Run '{run_id}' is deleted; restore it before resuming.")
        self._check_loggable(run_id, [fields_record(status="RUNNING")], remote=False)
        if (
            row["status"] == "RUNNING"
            and is_alive(row.get("process"))
            and run_id not in (self._writers)
        ):
            raise RunStateError(f"Run '{run_id}' is already RUNNING in another live process.")
        if run_id not in self._writers:
            repair_tail(self.journal_path(run_id))  # no live writer: mend a crash's torn tail
        writer = self._open_writer(run_id)
        writer.write(fields_record(status="RUNNING", end_time=None, process=current_process()))
        self.catalog.commit()
        return writer

    def writer(self, run_id: str) -> RunWriter | None:
        """This process's open writer for a run, if any."""
        return self._writers.get(run_id)

    def finish_run(self, run_id: str, status: str, end_time: int | None = None) -> None:
        """Set a terminal status and release the writer.

        The journal is complete on return (safe against a crash of this process); it is
        fsynced by the background thread within a second, or at once by :meth:`flush`.
        Other processes see the new status at the next catalog commit (the same second).
        """
        end_time = end_time if end_time is not None else _now_ms()
        writer = self._writers.get(run_id)
        if writer is not None:
            writer.flush()  # the last points precede the status that ends the run
        self.append(run_id, [fields_record(status=status, end_time=end_time)])
        with self._writers_lock:
            writer = self._writers.pop(run_id, None)
            if writer is not None:
                self._unsynced.add(writer.close())

    def append(self, run_id: str, records: list[Record], *, remote: bool = False) -> None:
        """Append records to a run, through its open writer or directly to its journal.

        A run pulled from a tracking server is read-only here: only sync (``remote=True``)
        appends to it, and anyone may delete or restore it locally.
        """
        self.check_writable()
        self._check_loggable(run_id, records, remote)
        writer = self._writers.get(run_id)
        if writer is not None:
            for record in records:
                writer.write(record)
            return
        row = self.get_run(run_id)
        # Under the lock, as doctor's mending is: it never cuts a tail while we append.
        with self.lock:
            if not (row["status"] == "RUNNING" and is_alive(row.get("process")) is not False):
                repair_tail(self.journal_path(run_id))  # nobody is appending: safe to mend
            try:
                with Journal(self.journal_path(run_id)) as journal:
                    journal.append_many(records)
            except OSError as error:
                safe = record_not_written(", ".join(sorted({r["op"] for r in records})))
                raise journal_write_error(self, run_id, error, safe) from error
            for record in records:
                patch = to_patch(record)
                if patch is not None:
                    self.catalog.stage(RUNS, run_id, patch)
            self.catalog.commit()

    def _check_loggable(self, run_id: str, records: list[Record], remote: bool) -> None:
        """Refuse records a deleted run (all but ``set``) or a pulled one (unless
        ``remote``: sync itself) may not take; one catalog read for both rules."""
        stage, pulled_from = self.catalog.values(RUNS, run_id, ("lifecycle_stage", "remote"))
        if any(r["op"] != "set" for r in records):
            _refuse_deleted(run_id, stage)
        if not remote:
            _refuse_pulled(run_id, pulled_from, records)

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        """Log params; a key already logged may be logged again only with the same value."""
        current = self.get_run(run_id).get("params", {})
        for key, value in params.items():
            if key in current and current[key] != value:
                raise InvalidParameterError(
                    f"Changing param values is not allowed. Param with key='{key}' was already "
                    f"logged with value='{current[key]}' for run ID='{run_id}'. Attempted "
                    f"logging new value '{value}'."
                )
        new = {k: v for k, v in params.items() if k not in current}
        if new:
            self.append(run_id, [params_record(new)])

    def log_points(self, run_id: str, points: list | tuple) -> None:
        """Log flat metric points (records.POINT_WIDTH a point): into the buffer of the
        run's open writer in this process, else to its journal at once."""
        writer = self._writers.get(run_id)
        if writer is not None:
            writer.points.extend(points)
        elif points:
            self.append(run_id, metric_records(list(points)))

    def add_artifact(
        self,
        run_id: str,
        relative: str,
        source: str | os.PathLike | bytes,
        *,
        remote: bool = False,
    ) -> str:
        """Store a file (a path to copy, or bytes) at ``relative`` under the run's artifacts;
        return its SHA-256, as recorded in the journal (``remote``: as :meth:`append`)."""
        relative = artifacts.relative_path(relative)
        self.check_writable()
        self._check_loggable(run_id, [artifact_record(relative, 0, "")], remote)
        target = artifacts.destination(self.artifact_dir(run_id), relative)
        if isinstance(source, bytes):
            size, sha256 = artifacts.write_bytes(target, source)
        else:
            size, sha256 = artifacts.copy_in(source, target)
        self.append(run_id, [artifact_record(relative, size, sha256)], remote=remote)
        return sha256

    def _open_writer(self, run_id: str) -> RunWriter:
        with self._writers_lock:
            writer = self._writers.get(run_id)
            if writer is None:
                writer = self._writers[run_id] = RunWriter(self, run_id)
            if self._flusher is None:
                self._flusher = Flusher(self.open_writers, self._housekeeping)
        return writer

    def open_writers(self) -> list[RunWriter]:
        """This process's open writers."""
        with self._writers_lock:
            return list(self._writers.values())

    # -- runs: reading ------------------------------------------------------------------

    def artifact_uri(self, run_id: str) -> str:
        # The root's URI is built once: Path.as_uri costs as much as the rest of create_run.
        return f"{self._root_uri}/{_artifacts_in_root(run_id)}"

    def get_run(self, run_id: str) -> RunRow:
        """The run's catalog row (a copy)."""
        row = self.catalog.get(RUNS, run_id)
        if row is None and _is_run_id(run_id) and self.journal_path(run_id).exists():
            recovery.index_run(self, run_id)  # the journal is the truth; the index lagged
            row = self.catalog.get(RUNS, run_id)
        if row is None:
            raise NotFoundError(f"Run with id={run_id} not found in {self.root}.")
        return row

    def resolve_run(self, ref: str) -> RunRow:
        """Find a run by id, unique id prefix, name (the newest run of that name) or 'last'."""
        if _is_run_id(ref):
            return self.get_run(ref)
        from nbtrack.store import query

        columns = self.catalog.run_columns()
        active = query.field_mask(columns, "lifecycle_stage", ACTIVE.__eq__, False)
        if ref == "last":
            matches = active
        else:
            matches = active & query.field_mask(columns, "run_name", ref.__eq__, False)
            if not matches.any() and len(ref) >= 4:
                matches = active & query.id_prefix_mask(columns, ref)
                if matches.sum() > 1:
                    raise InvalidParameterError(
                        f"Run id prefix {ref!r} matches {matches.sum()} runs; give more of it."
                    )
        if not matches.any():
            raise NotFoundError(
                f"No run {ref!r} in {self.root}: give a run id, an id prefix of 4+ characters, "
                "a run name, or 'last'."
            )
        return columns.row(query.newest(columns, matches))

    def runs(self) -> list[RunRow]:
        """Every run's row, deleted ones included; treat them as read-only."""
        return self.catalog.documents(RUNS)

    def run_columns(self) -> RunColumns:
        """Every run's row as columns (see columns.py): what search reads; read-only."""
        return self.catalog.run_columns()

    def search(
        self,
        experiment_ids: Collection[str] | None = None,
        filter_string: str | None = "",
        view: str = ACTIVE,
        order_by: list[str] | None = None,
        max_results: int | None = None,
    ) -> RunHits:
        """Runs matching an MLflow filter, in MLflow's order (``order_by`` first).

        ``experiment_ids`` None means every experiment; ``view`` is ``active``,
        ``deleted`` or ``all``. Raises InvalidFilterError for a bad filter or order_by.
        """
        from nbtrack.store import query

        return query.search(
            self.catalog.run_columns(), experiment_ids, view, filter_string, order_by, max_results
        )

    def runs_of(self, experiment_ids: Collection[str] | None) -> RunHits:
        """Every run of these experiments (None: every experiment), any lifecycle stage,
        in no particular order: for what they hold (their keys, their counts)."""
        from nbtrack.store import query

        return query.of_experiments(self.catalog.run_columns(), experiment_ids)

    def run_counts(self) -> dict[str, int]:
        """How many active runs each experiment has."""
        from nbtrack.store import query

        return query.counts(self.catalog.run_columns(), "experiment_id", self.search().index)

    def metric_history(self, run_id: str, key: str) -> MetricColumns:
        """All points of one metric as numpy columns (steps, values, timestamps), in logged
        order."""
        import numpy as np

        prefix = line_prefix("metrics") + b',"key":' + orjson.dumps(key) + b","
        # Record by record: a million points' encoded records are never all in memory.
        parts = [metric_columns(r) for r in self._read(run_id, prefix)]
        if not parts:
            return np.empty(0, "<i8"), np.empty(0, "<f8"), np.empty(0, "<i8")
        steps, values, times = zip(*parts, strict=True)
        return np.concatenate(steps), np.concatenate(values), np.concatenate(times)

    def records(self, run_id: str, op: str | None = None) -> list[Record]:
        """Every complete record of a run's journal (only those of kind ``op``, if given),
        after writing what is buffered."""
        return list(self._read(run_id, line_prefix(op) if op is not None else None))

    def _read(self, run_id: str, prefix: bytes | None) -> Iterator[Record]:
        """The run's records, read as they are iterated; the run's existence is checked
        and what this process buffers for it written now, not at the first record."""
        self.get_run(run_id)
        writer = self._writers.get(run_id)
        if writer is not None:
            writer.flush()
        return read_records(self.journal_path(run_id), prefix)

    def records_after(
        self, run_id: str, offset: int, op: str | None, end: int | None = None
    ) -> tuple[list[Record], int]:
        """The records of kind ``op`` (None: all) appended between byte ``offset`` and
        ``end`` of the run's journal, and the offset to read from next (for readers that
        follow a run, and sync's watermarks)."""
        lines, offset = read_lines_after(self.journal_path(run_id), offset, end)
        if op is None:
            return [orjson.loads(line) for line in lines], offset
        prefix = line_prefix(op)
        return [orjson.loads(line) for line in lines if line.startswith(prefix)], offset

    def unflushed(self, run_id: str) -> tuple[int, list] | None:
        """The journal's length and a copy of the points not yet written to it, for live
        panels; None when this process has no open writer for the run."""
        writer = self._writers.get(run_id)
        return writer.snapshot() if writer is not None else None

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.append(run_id, [tags_record(tags)])

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag; an error if the run has no such tag."""
        if key not in self.get_run(run_id).get("tags", {}):
            raise NotFoundError(f"No tag with name: {key!r} in run with id {run_id}.")
        self.append(run_id, [untag_record(key)])

    def rename_run(self, run_id: str, name: str) -> None:
        """Rename a run: its row and MLflow's ``mlflow.runName`` tag."""
        self.append(run_id, [fields_record(run_name=name), tags_record({"mlflow.runName": name})])

    def set_fields(self, run_id: str, **fields: Any) -> None:
        """Change top-level fields of a run's row (``run_name``, ``error``, ...)."""
        self.append(run_id, [fields_record(**fields)])

    def set_lifecycle(self, run_id: str, stage: str) -> None:
        """Soft-delete (``deleted``) or restore (``active``) a run. A deletion records its
        time, for ``nbtrack gc --older-than`` (as MLflow's ``deleted_time``), and an open
        writer of a deleted run refuses new points at once, as MLflow refuses to log to it."""
        deleted_time = _now_ms() if stage == DELETED else None
        self.append(run_id, [fields_record(lifecycle_stage=stage, deleted_time=deleted_time)])
        writer = self._writers.get(run_id)
        if writer is not None:
            writer.accept_points(stage == ACTIVE)

    def purge_runs(self, run_ids: Collection[str], progress: bool = False) -> list[str]:
        """Remove deleted runs for good: catalog rows, journals and artifacts (``nbtrack gc``;
        see :mod:`nbtrack.store.purge`). Returns the ids removed.

        Raises
        ------
        InvalidParameterError
            If any run is unknown, not deleted, the source of a registered model version,
            or still logged to by a live process; then nothing is removed.
        """
        return purge.purge_runs(self, run_ids, progress=progress)

    # -- durability -------------------------------------------------------------------------

    def flush(self, durable: bool = True) -> None:
        """Write every buffered point and catalog change; fsync journals when durable.

        Raises
        ------
        StoreWriteError
            When something could not be written (a full disk). Everything else was still
            written; what failed stays buffered for the next flush.
        """
        failures = []
        for writer in self.open_writers():
            try:
                writer.flush(durable=durable)
            except StoreWriteError as error:
                failures.append(error)
        if durable:
            self._sync_closed_journals()
        try:
            self.catalog.commit()
        except StoreWriteError as error:
            failures.append(error)
        if failures:
            raise _one_error(failures)

    def _housekeeping(self) -> None:
        """What the background thread does each second besides flushing buffers."""
        self._sync_closed_journals()
        self.catalog.commit()

    def _sync_closed_journals(self) -> None:
        # Held until the fsyncs are done, so a flush() racing the background thread
        # returns only after the journals that thread took are durable.
        with self._sync_lock:
            with self._writers_lock:
                paths, self._unsynced = self._unsynced, set()
            for path in paths:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def close(self) -> None:
        """Flush everything and stop the background thread; open runs stay RUNNING."""
        if self._flusher is not None:
            self._flusher.stop()
            self._flusher = None
        self.flush()
        with self._writers_lock:
            writers, self._writers = list(self._writers.values()), {}
            if self._created_fd >= 0:
                os.close(self._created_fd)
                self._created_fd = -1
        for writer in writers:
            writer.close(durable=True)
        self.catalog.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"


def _open_folder(root: Path) -> bool:
    """Make sure ``root`` holds a store's runs folder; True if this process may write to it."""
    runs = root / RUNS
    if runs.is_dir():
        return os.access(root, os.W_OK) and os.access(runs, os.W_OK)
    try:
        runs.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if error.errno not in _READ_ONLY_ERRNOS:
            raise
        raise StoreReadOnlyError(
            f"No store at {root}, and none can be made there: {error.strerror}. "
            "Point nbtrack at a folder you can write to (set_tracking_uri, NBTRACK_DIR)."
        ) from None
    return True


def _one_error(failures: list[StoreWriteError]) -> StoreWriteError:
    """The first failure, naming the others (a full disk fails every write alike)."""
    first, others = failures[0], [f.what for f in failures[1:]]
    if not others:
        return first
    return StoreWriteError(
        f"{first} The same flush could not write {', '.join(others)} either.",
        ", ".join(f.what for f in failures),
        first.errno,
    )


def _new_experiment(name: str, experiment_id: str, tags: dict[str, str] | None = None) -> dict:
    now = _now_ms()
    fields = {
        "experiment_id": experiment_id,
        "name": name,
        "lifecycle_stage": ACTIVE,
        "creation_time": now,
        "last_update_time": now,
    }
    return {"set": fields, "tags": dict(tags or {})}


def _artifacts_in_root(run_id: str) -> str:
    """Where a run's artifacts live, relative to the store's root (a path and a URI)."""
    return f"{RUNS}/{run_id}/artifacts"


def _refuse_deleted(run_id: str, lifecycle_stage: str | None) -> None:
    if lifecycle_stage not in (None, ACTIVE):
        raise RunStateError(
            f"Run '{run_id}' is deleted; restore it (restore_run) before logging to it."
        )


def _refuse_pulled(run_id: str, remote: dict[str, Any] | None, records: list[Record]) -> None:
    if remote is None or all(_lifecycle_only(r) for r in records):
        return
    raise RunStateError(
        f"Run '{run_id}' was pulled from {remote.get('server')} and is read-only here: "
        "log to it on that server (or to a new run), then pull again."
    )


def _lifecycle_only(record: Record) -> bool:
    """A local deletion or restore, which a read-only (pulled) run still allows."""
    return record["op"] == "set" and set(record["fields"]) <= {"lifecycle_stage", "deleted_time"}


def _is_run_id(run_id: str) -> bool:
    return len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id)


def _now_ms() -> int:
    return int(time.time() * 1000)
