"""The TinyDB storage behind the catalog: a snapshot file plus an append-only change log.

TinyDB's ``Storage`` reads and writes the whole database, which would make every change
cost as much as the catalog is big. This storage keeps TinyDB's seam, but:

- Small changes are *patches* appended to ``catalog.log``. Only when the log has grown
  past a few megabytes is everything folded into a new ``catalog.snapshot`` (written to
  a temp file, fsynced and renamed over the old one), so a change costs O(1) amortized
  and a new process never has much log to read; a writer that closes the store with a
  long log folds it then.
- The snapshot (see snapshot.py) keeps the runs table as columns (see columns.py). A
  process reads the snapshot's small head when it opens the store, and the runs only
  when it first reads a run it did not create itself; search reads the columns, never
  a dict per run.
- Readers take no lock: they re-read the files when their size, inode or mtime moved,
  and read again if the snapshot was replaced while they read the log. So a process
  sees what others committed, and a read-only store can be read.
- A snapshot or log that cannot be read back is reported to ``on_damage`` (the store
  rebuilds the catalog from the journals there), never half-applied.

Both files are changed only under the store lock.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from tinydb.storages import Storage

from nbtrack.errors import StoreError, StoreReadOnlyError, StoreWriteError
from nbtrack.store.journal import read_lines_after
from nbtrack.store.locking import StoreLock
from nbtrack.store.rows import (
    Patch,
    apply_patch,
    copy_value,
    from_disk,
    merge_patch,
    patch_from_disk,
    patch_to_disk,
    to_disk,
)
from nbtrack.store.snapshot import Snapshot, SnapshotDamaged, atomic_write, encode

if TYPE_CHECKING:
    from nbtrack.store.columns import RunColumns

SCHEMA_VERSION = 2
META_TABLE = "_meta"
META_ID = "1"
RUNS = "runs"
SNAPSHOT_NAME = "catalog.snapshot"
CHANGELOG_NAME = "catalog.log"
# The schema-1 catalog (one JSON file). A store in the new format keeps a stub there
# saying schema 2, which makes older nbtrack versions refuse the store with a clear
# message instead of rebuilding a catalog of their own beside this one.
LEGACY_NAME = "catalog.json"
LEGACY_STUB = orjson.dumps({META_TABLE: {META_ID: {"schema": SCHEMA_VERSION, "generation": 0}}})
COMPACT_MIN_BYTES = 2 << 20
COMPACT_SNAPSHOT_FRACTION = 16  # ... or a sixteenth of the snapshot, once that is larger
# A writer closing the store folds a log it grew past this share of that threshold: the
# next process to open the store then reads the snapshot alone (a 1.6 MB log of 10,000
# runs costs each new reader ~0.15 s to replay; folding it costs the closing one 0.18 s).
COMPACT_AT_CLOSE_FRACTION = 8

Tables = dict[str, dict[str, dict[str, Any]]]
Summarize = Callable[["RunColumns", dict[str, Any]], dict[str, Any]]
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _recovering(method: _Method) -> _Method:
    """Run ``method``; if it meets a damaged file (the runs are read lazily, so any
    read may), rebuild the catalog through ``on_damage`` and run it again."""

    @functools.wraps(method)
    def call(self: CatalogStorage, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except SnapshotDamaged as damage:
            self._recover(str(damage))
            return method(self, *args, **kwargs)

    return call  # type: ignore[return-value]


class CatalogDamagedWarning(UserWarning):
    """The catalog's files could not be read back; it was rebuilt from the journals."""


class CatalogStorage(Storage):
    """A TinyDB ``Storage`` over ``catalog.snapshot`` + ``catalog.log`` in ``root``.

    Beyond TinyDB's ``read``/``write``, :meth:`stage` records a patch to one document
    (visible to this process at once) and :meth:`commit` appends the staged patches to
    the log for other processes to see. :meth:`run_columns` is the runs table as columns.

    Parameters
    ----------
    writable
        False for a store this process may not change: nothing is ever written, and
        staged patches (rows recovered from journals) stay in memory.
    on_damage
        Called with a description when a file cannot be read back; it should rebuild
        the catalog (:meth:`write`, or :meth:`adopt` when read-only). Without it, a
        damaged catalog raises StoreError.
    summarize
        Called with the runs and the current meta document whenever a snapshot is
        written; returns the meta document to store in it.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        lock: StoreLock,
        *,
        writable: bool = True,
        on_damage: Callable[[str], None] | None = None,
        summarize: Summarize | None = None,
    ):
        self.root = Path(root)
        self._snapshot_path = self.root / SNAPSHOT_NAME
        self._legacy_path = self.root / LEGACY_NAME
        self._changelog = self.root / CHANGELOG_NAME
        self._lock = lock
        self.writable = writable
        self._on_damage = on_damage
        self._summarize = summarize
        self._file: Snapshot | None = None
        self._staged: dict[tuple[str, str], Patch] = {}
        self._committing = False  # staged patches taken by a commit, not yet in the log
        self._fresh: set[str] = set()  # runs known not to be in the snapshot read
        self._reset(None)
        self._loaded = False
        self._appended = False  # this process added to the log since it opened the store
        self.needs_migration = False
        self._stub_checked = False
        # Guards the in-memory state against the background flusher; taken after the
        # store lock, never before it.
        self._mutex = threading.RLock()

    def _reset(self, signature: tuple[int, int, int] | None) -> None:
        """Forget everything read from the files (staged patches stay)."""
        if self._file is not None:
            self._file.close()
        self._file = None
        self._snapshot_signature = signature
        self._generation = 0
        self._log_offset = 0
        self._tables: Tables = {}  # every table but runs
        self._written_meta: dict[str, Any] = {}  # the meta document as the snapshot holds it
        self._base: RunColumns | None = None  # the snapshot's runs, once read
        self._base_rows: dict[str, dict[str, Any]] | None = None  # ... as dicts, once asked
        self._committed: dict[str, Patch] = {}  # runs patches from the log, merged per run
        self._rows: dict[str, dict[str, Any]] = {}  # current rows of patched runs
        self._merged: RunColumns | None = None  # base + patched runs, for search
        self._dirty: set[str] = set()  # patched runs not yet in _merged

    # -- TinyDB's Storage interface ----------------------------------------------------

    @_recovering
    def read(self) -> Tables | None:
        self.refresh()
        with self._mutex:
            tables: Tables = dict(self._tables)
            runs = dict(self._all_runs())
            if runs:
                tables[RUNS] = runs
            return tables or None

    def write(self, data: Tables) -> None:
        """Replace the catalog with ``data`` atomically (also folds in the change log).

        The catalog's own document (``_meta``) is what ``data`` holds of it, if anything.
        """
        self._check_writable()
        with self._lock, self._mutex:
            with contextlib.suppress(SnapshotDamaged):
                self._refresh_locked()  # for the generation: the new one must be newer
            data = dict(data)
            runs = data.pop(RUNS, None) or {}
            # Only the meta the caller gives is kept: a catalog replaced wholesale
            # (a rebuild, a TinyDB write) vouches for nothing else.
            meta = (data.pop(META_TABLE, None) or {}).get(META_ID, {})
            self._rows = {}
            self._fresh -= set(runs)
            self._write_snapshot(data, _columns().from_rows(runs), self._generation + 1, meta)

    def close(self) -> None:
        """Close the snapshot file (a later read opens it again), first folding the log if
        this process grew it long."""
        if self._appended and self._log_offset * COMPACT_AT_CLOSE_FRACTION > (
            self._compact_threshold()
        ):
            # Only later reads get cheaper: if it fails, the log still holds everything.
            with contextlib.suppress(OSError, StoreError):
                self.compact()
        with self._mutex:
            self._reset(None)
            self._loaded = False
            self._appended = False

    # -- patches ------------------------------------------------------------------------

    def stage(self, table: str, doc_id: str, patch: Patch, *, new: bool = False) -> None:
        """Apply ``patch`` to a document in memory and remember it for :meth:`commit`.

        ``new`` says the snapshot does not hold the document (a run just created, or
        one the caller knows was created after the snapshot), so reading it reads no
        snapshot.
        """
        if not self._loaded:
            self.refresh()
        with self._mutex:
            key = (table, doc_id)
            pending = self._staged.get(key)
            if pending is None:
                self._staged[key] = _copy_patch(patch)
            else:
                merge_patch(pending, patch)
            if table != RUNS:
                apply_patch(self._tables.setdefault(table, {}).setdefault(doc_id, {}), patch)
                return
            if new:
                self._fresh.add(doc_id)
            row = self._rows.get(doc_id)
            if row is not None:
                apply_patch(row, patch)
            self._dirty.add(doc_id)

    @_recovering
    def get(self, table: str, doc_id: str) -> dict[str, Any] | None:
        """A copy of one document, or None."""
        self.refresh()
        with self._mutex:
            doc = self._document(table, doc_id)
            return copy_value(doc) if doc is not None else None

    @_recovering
    def value(self, table: str, doc_id: str, field: str, default: Any = None) -> Any:
        """One field of a document."""
        self.refresh()
        with self._mutex:
            doc = self._document(table, doc_id)
            return default if doc is None else doc.get(field, default)

    @_recovering
    def values(self, table: str, doc_id: str, fields: tuple[str, ...]) -> tuple[Any, ...]:
        """Several fields of a document (None where missing), read at one moment."""
        self.refresh()
        with self._mutex:
            doc = self._document(table, doc_id) or {}
            return tuple(doc.get(field) for field in fields)

    @_recovering
    def documents(self, table: str) -> list[dict[str, Any]]:
        """The documents of a table as they are now; treat them as read-only."""
        self.refresh()
        with self._mutex:
            if table == RUNS:
                return [row for _, row in self._all_runs()]
            return list(self._tables.get(table, {}).values())

    def mark_new(self, run_ids: Collection[str]) -> None:
        """Say that the snapshot read does not hold these runs (they were created after
        it), so reading them reads none of its runs."""
        with self._mutex:
            self._fresh |= set(run_ids)

    def patched(self, run_id: str) -> bool:
        """True if a patch since the snapshot names the run (reads no snapshot)."""
        self.refresh()
        with self._mutex:
            return run_id in self._committed or (RUNS, run_id) in self._staged

    @_recovering
    def run_ids(self) -> set[str]:
        """The ids of every run in the runs table."""
        self.refresh()
        with self._mutex:
            ids = set(self._runs_base().index) | set(self._committed) | self._fresh
            return ids | {i for t, i in self._staged if t == RUNS}

    def changes(self) -> dict[str, Patch]:
        """Every run patched since the snapshot, with its patches merged (a copy)."""
        self.refresh()
        with self._mutex:
            merged = {run_id: _copy_patch(p) for run_id, p in self._committed.items()}
            for (table, run_id), patch in self._staged.items():
                if table == RUNS:
                    if run_id in merged:
                        merge_patch(merged[run_id], patch)
                    else:
                        merged[run_id] = _copy_patch(patch)
            return merged

    def meta(self) -> dict[str, Any]:
        """The catalog's own document: schema, generation, what ``summarize`` stored,
        and any patches to it since."""
        self.refresh()
        with self._mutex:
            return dict(self._tables.get(META_TABLE, {}).get(META_ID, {}))

    def snapshot_meta(self) -> dict[str, Any]:
        """The catalog's own document as the snapshot read holds it (what it says about
        that snapshot's runs), without the patches since."""
        self.refresh()
        with self._mutex:
            return dict(self._written_meta)

    @_recovering
    def run_columns(self) -> RunColumns:
        """The runs table as it is now, as columns (see columns.py); read-only."""
        self.refresh()
        with self._mutex:
            if self._merged is None:
                self._merged = self._runs_base()
                self._dirty |= set(self._committed) | {i for t, i in self._staged if t == RUNS}
            if self._dirty:
                changed = {}
                for run_id in self._dirty:
                    row = self._run_row(run_id)
                    if row is not None:
                        changed[run_id] = row
                self._merged = self._merged.replaced(changed, exhaustive=False, new=self._fresh)
                self._dirty = set()
            return self._merged

    def remove(self, table: str, doc_ids: Collection[str]) -> None:
        """Delete documents for good, in a new snapshot: the change log can patch a
        document but not take it away."""
        self._check_writable()
        gone = set(doc_ids)
        with self._lock, self._mutex:
            self._refresh_locked()
            for doc_id in gone:
                self._staged.pop((table, doc_id), None)
            if table == RUNS:
                self._compact(drop=gone)
            else:
                docs = self._tables.get(table, {})
                for doc_id in gone:
                    docs.pop(doc_id, None)
                self._compact()

    @property
    def has_staged(self) -> bool:
        return bool(self._staged)

    @_recovering
    def commit(self) -> None:
        """Append every staged patch to the change log, compacting when it has grown.

        Returns only once everything staged before the call is in the log, even when
        another thread is committing at the same moment. In a read-only store the
        staged patches stay in this process's memory.
        """
        if not self.writable or not (self._staged or self._committing):
            return  # nothing to write, nor being written: no lock to wait for
        # The store lock, not a lock of the commit's own: the threads that commit holding
        # it (every store write) and the flusher that commits without it then take their
        # turns in one order, and a thread whose patches another one took waits here
        # until they are written.
        with self._lock:
            if self._staged:
                try:
                    self._commit_staged()
                except OSError as error:
                    raise _write_error(self._changelog, error, _UNCOMMITTED) from error

    def _commit_staged(self) -> None:
        self.refresh()
        with self._mutex:
            staged, self._staged = self._staged, {}
            generation = self._generation
            lines = b"".join(
                orjson.dumps(
                    {"gen": generation, "table": t, "id": i, "patch": patch_to_disk(patch)}
                )
                + b"\n"
                for (t, i), patch in staged.items()
            )
            self._committing = True
        try:
            with open(self._changelog, "ab") as log:
                if log.tell() > self._log_offset:
                    log.truncate(self._log_offset)  # a torn record left by a failed write
                log.write(lines)
                log.flush()
                # Not log.tell(): truncating does not move the position of an "ab" file.
                size = os.fstat(log.fileno()).st_size
        except BaseException:
            with self._mutex:  # nothing was committed: keep it staged, in order
                for key, patch in staged.items():
                    later = self._staged.get(key)
                    if later is not None:
                        merge_patch(patch, later)
                    self._staged[key] = patch
                self._committing = False
            raise
        with self._mutex:
            self._committing = False
            self._log_offset = size
            self._appended = True
            for (table, run_id), patch in staged.items():
                if table == RUNS:
                    self._add_committed(run_id, patch)
            if self._log_offset > self._compact_threshold():
                # Compacting only makes later reads cheaper: if it fails (a full
                # disk), the log still holds everything, and a later commit tries again.
                with contextlib.suppress(OSError):
                    self._compact()

    def _compact_threshold(self) -> int:
        size = self._file.signature[1] if self._file is not None else 0
        return max(COMPACT_MIN_BYTES, size // COMPACT_SNAPSHOT_FRACTION)

    def compact(self) -> None:
        """Fold the change log into a new snapshot now (commits do it when the log has
        grown; doctor --rebuild writes one from the journals instead)."""
        self._check_writable()
        with self._lock, self._mutex:
            self._refresh_locked()
            self._compact()

    def migrate(self) -> None:
        """Write a catalog read in an older format in the current one."""
        self._check_writable()
        with self._lock, self._mutex:
            self._refresh_locked()
            if self.needs_migration:
                self._compact()

    def adopt(self, tables: Tables) -> None:
        """Hold ``tables`` as the catalog in memory only (a rebuilt read-only store): the
        files are left as they are, and read again only once another process changes them."""
        with self._mutex:
            tables = dict(tables)
            runs = tables.pop(RUNS, None) or {}
            meta = tables.pop(META_TABLE, None)
            self._reset(file_signature(self._snapshot_path))
            self._log_offset = _size(self._changelog)
            self._tables = tables
            if meta:
                self._tables[META_TABLE] = meta
                self._written_meta = dict(meta.get(META_ID, {}))
            self._base = _columns().from_rows(runs)
            self._loaded = True

    # -- the state's documents -------------------------------------------------------------

    def _document(self, table: str, doc_id: str) -> dict[str, Any] | None:
        if table == RUNS:
            return self._run_row(doc_id)
        return self._tables.get(table, {}).get(doc_id)

    def _run_row(self, run_id: str) -> dict[str, Any] | None:
        """The run's row as of now: its snapshot row, then committed, then staged patches."""
        row = self._rows.get(run_id)
        if row is not None:
            return row
        committed = self._committed.get(run_id)
        staged = self._staged.get((RUNS, run_id))
        if committed is None and staged is None:
            return self._runs_base().get(run_id)
        row = self._base_row(run_id)
        if committed is not None:
            apply_patch(row, committed)
        if staged is not None:
            apply_patch(row, staged)
        self._rows[run_id] = row
        return row

    def _base_row(self, run_id: str) -> dict[str, Any]:
        if run_id in self._fresh:
            return {}
        return self._runs_base().get(run_id) or {}

    def _all_runs(self) -> list[tuple[str, dict[str, Any]]]:
        base = self._runs_base()
        if self._base_rows is None:
            self._base_rows = dict(zip(base.ids, base.rows(), strict=True))
        patched = set(self._committed) | {i for t, i in self._staged if t == RUNS}
        found = []
        for run_id, row in self._base_rows.items():
            found.append((run_id, self._run_row(run_id) if run_id in patched else row))
        for run_id in patched:
            if run_id not in self._base_rows:
                found.append((run_id, self._run_row(run_id)))
        return found

    def _runs_base(self) -> RunColumns:
        if self._base is None:
            self._base = self._file.runs() if self._file is not None else _columns().empty()
        return self._base

    def _add_committed(self, run_id: str, patch: Patch) -> None:
        """Merge a patch this catalog now owns (just read, or taken from the staged)."""
        pending = self._committed.get(run_id)
        if pending is None:
            self._committed[run_id] = patch
        else:
            merge_patch(pending, patch)

    # -- reading the files -------------------------------------------------------------------

    def refresh(self) -> bool:
        """Re-read what other processes committed; return True if anything was read."""
        if self._loaded and self._unchanged():
            return False
        try:
            with self._mutex:
                self._refresh_locked()
        except SnapshotDamaged as damage:
            self._recover(str(damage))
        return True

    def _refresh_locked(self) -> None:
        # A writer renames a new snapshot in before it truncates the log. So if the
        # snapshot is the same after the log was read as before, the log read was of
        # that snapshot's generation; if not, read both again.
        for _ in range(1000):
            signature = file_signature(self._snapshot_path)
            if not self._loaded or signature != self._snapshot_signature:
                self._load(signature)
            try:
                self._read_log_tail()
            except SnapshotDamaged:
                if file_signature(self._snapshot_path) != self._snapshot_signature:
                    continue  # read across a compaction: read again
                raise
            if file_signature(self._snapshot_path) == self._snapshot_signature:
                break
        else:
            raise StoreError(f"The catalog in {self.root} kept changing while it was read.")
        self._loaded = True
        for (table, doc_id), patch in self._staged.items():
            if table != RUNS:
                apply_patch(self._tables.setdefault(table, {}).setdefault(doc_id, {}), patch)

    def _unchanged(self) -> bool:
        if _size(self._changelog) != self._log_offset:
            return False
        return file_signature(self._snapshot_path) == self._snapshot_signature

    def _load(self, signature: tuple[int, int, int] | None) -> None:
        self._reset(signature)
        self._fresh = set()  # a new snapshot may hold them now
        self._loaded = False
        if signature is None:
            self._load_legacy()
            return
        try:
            snapshot = Snapshot(self._snapshot_path)
        except FileNotFoundError:  # removed since the stat
            self._snapshot_signature = None
            self._load_legacy()
            return
        self._file = snapshot
        self._snapshot_signature = snapshot.signature
        self._check_schema(snapshot.schema, self._snapshot_path)
        self._generation = snapshot.generation
        self._tables = {
            name: {doc_id: from_disk(doc) for doc_id, doc in table.items()}
            for name, table in snapshot.tables.items()
        }
        self._written_meta = dict(self._tables.get(META_TABLE, {}).get(META_ID, {}))

    def _load_legacy(self) -> None:
        """Read a schema-1 catalog.json, if there is one (not the stub)."""
        try:
            raw = self._legacy_path.read_bytes()
        except FileNotFoundError:
            return
        try:
            data = orjson.loads(raw)
            meta = data.get(META_TABLE, {}).get(META_ID, {})
        except (orjson.JSONDecodeError, AttributeError):
            raise SnapshotDamaged(f"{LEGACY_NAME} is not valid JSON") from None
        schema = meta.get("schema", 1)
        if schema >= SCHEMA_VERSION:
            self._check_schema(schema, self._legacy_path)
            return  # the stub of a store whose snapshot was lost
        tables = {
            name: {doc_id: from_disk(doc) for doc_id, doc in table.items()}
            for name, table in data.items()
        }
        self._base = _columns().from_rows(tables.pop(RUNS, {}))
        self._generation = meta.get("generation", 0)
        self._tables = tables
        self.needs_migration = True

    def _check_schema(self, schema: int, path: Path) -> None:
        if schema > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has catalog schema {schema}, newer than this nbtrack understands "
                f"({SCHEMA_VERSION}). Upgrade nbtrack to open it."
            )

    def _read_log_tail(self) -> None:
        lines, _ = read_lines_after(self._changelog, self._log_offset)
        for line in lines:
            try:
                record = orjson.loads(line)
                generation, table, doc_id = record["gen"], record["table"], record["id"]
                patch = patch_from_disk(record["patch"])
                if not (isinstance(table, str) and isinstance(doc_id, str)):
                    raise TypeError(table, doc_id)
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, IndexError):
                raise SnapshotDamaged(f"{CHANGELOG_NAME} has a record that is not one") from None
            if generation != self._generation:
                # The log of an older snapshot, which a writer has just replaced and is
                # about to truncate: stay before it, so the new log is read from here.
                return
            if table == RUNS:
                self._add_committed(doc_id, patch)
                self._rows.pop(doc_id, None)  # staged patches must stay last: rebuild it
                self._dirty.add(doc_id)
            else:
                apply_patch(self._tables.setdefault(table, {}).setdefault(doc_id, {}), patch)
            self._log_offset += len(line) + 1

    def _recover(self, damage: str) -> None:
        """Continue from an empty catalog and have ``on_damage`` rebuild it."""
        with self._mutex:
            self._reset(file_signature(self._snapshot_path))
            self._log_offset = _size(self._changelog)
            self._loaded = True  # nothing re-reads the damaged files while rebuilding
        if self._on_damage is None:
            raise StoreError(
                f"The catalog in {self.root} is damaged ({damage}). "
                "Run `nbtrack doctor --rebuild` to rebuild it from the run journals."
            )
        self._on_damage(damage)

    # -- writing the snapshot -------------------------------------------------------------------

    def _compact(self, drop: Collection[str] = ()) -> None:
        """Fold the log into a new snapshot, without the runs in ``drop`` (store lock and
        mutex held)."""
        base = self._runs_base()
        changed = {}
        for run_id, patch in self._committed.items():
            if run_id not in drop:
                changed[run_id] = apply_patch(self._base_row(run_id), patch)
        runs = base.replaced(changed)
        if drop:
            kept = zip(runs.ids, runs.rows(), strict=True)
            runs = _columns().from_rows({i: row for i, row in kept if i not in drop})
        meta = self._tables.get(META_TABLE, {}).get(META_ID, {})
        self._write_snapshot(self._tables, runs, self._generation + 1, meta)
        self._fresh -= {*changed, *drop}  # the new snapshot holds them, or is without them

    def _write_snapshot(
        self, tables: Tables, runs: RunColumns, generation: int, meta: dict[str, Any]
    ) -> None:
        meta = dict(meta)
        if self._summarize is not None:
            meta = self._summarize(runs, meta)
        meta.update(schema=SCHEMA_VERSION, generation=generation)
        small = {name: table for name, table in tables.items() if name != META_TABLE}
        on_disk = {
            name: {doc_id: to_disk(doc) for doc_id, doc in table.items()}
            for name, table in small.items()
        }
        on_disk[META_TABLE] = {META_ID: meta}
        payload = encode(SCHEMA_VERSION, generation, on_disk, runs)
        try:
            atomic_write(self._snapshot_path, payload)
        except OSError as error:
            raise _write_error(self._snapshot_path, error, _UNCHANGED) from error
        # The log's records belong to the old generation now, and a reader stops at the
        # first of them: truncate before anything else can fail (truncating frees space).
        with open(self._changelog, "ab") as log:
            log.truncate(0)
        with contextlib.suppress(OSError):  # tried again with the next snapshot
            self._write_stub()
        staged_runs = {i for t, i in self._staged if t == RUNS}
        snapshot = Snapshot(self._snapshot_path)
        self._reset(snapshot.signature)
        self._file = snapshot
        self._generation = generation
        self._tables = {**small, META_TABLE: {META_ID: meta}}
        self._written_meta = dict(meta)
        for (table, doc_id), patch in self._staged.items():
            if table != RUNS:
                apply_patch(self._tables.setdefault(table, {}).setdefault(doc_id, {}), patch)
        self._base = self._merged = runs
        self._dirty = staged_runs
        self._loaded = True
        self.needs_migration = False

    def _write_stub(self) -> None:
        if self._stub_checked:
            return
        try:
            current = self._legacy_path.read_bytes() if _size(self._legacy_path) < 4096 else b""
        except FileNotFoundError:
            current = b""
        if current != LEGACY_STUB:
            atomic_write(self._legacy_path, LEGACY_STUB)
        self._stub_checked = True

    def _check_writable(self) -> None:
        if not self.writable:
            raise StoreReadOnlyError(
                f"The store {self.root} is read-only here: its catalog cannot be written."
            )


def _columns():
    """columns.py, imported when first needed: it brings numpy, which `import nbtrack`
    must not."""
    from nbtrack.store import columns

    return columns


_UNCHANGED = (
    "The catalog on disk is unchanged, and the journals hold everything it indexes. Free "
    "space (or fix the disk) and try again."
)
_UNCOMMITTED = (
    "Nothing is lost: the runs' journals hold what was logged, and the changes wait in "
    "this process for its next commit (other processes see them then). Free space (or fix "
    "the disk) and call flush() again."
)


def _write_error(file: Path, error: OSError, safe: str) -> StoreWriteError:
    what = f"the catalog ({file.name})"
    return StoreWriteError(
        f"Could not write {what} of the store {file.parent}: {error.strerror or error}. {safe}",
        what,
        error.errno,
    )


def _copy_patch(patch: Patch) -> Patch:
    return {k: (list(v) if isinstance(v, list) else dict(v)) for k, v in patch.items()}


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """Changes whenever the file is replaced or written to; None while it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
