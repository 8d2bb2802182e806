"""The TinyDB storage behind the catalog: an orjson snapshot plus an append-only change log.

TinyDB's ``Storage`` reads and writes the whole database, which makes every change cost
as much as the catalog is big. This storage keeps TinyDB's layout and seam but writes
small changes as *patches* appended to ``catalog.log``; only when that log has grown as
large as the snapshot is everything folded into a new ``catalog.json``, written to a temp
file, fsynced and renamed over the old one. Each change therefore costs O(1) amortized,
and a reader sees the snapshot plus every complete log record after it.

Both files are changed only under the store lock. A reader re-reads them when their
size, inode or mtime moved, so a process sees what other processes committed, and only
the log's new tail needs parsing in the common case.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

import orjson
from tinydb.storages import Storage

from nbtrack.errors import StoreError, StoreWriteError
from nbtrack.store.journal import read_lines_after
from nbtrack.store.locking import StoreLock
from nbtrack.store.rows import (
    Patch,
    apply_patch,
    from_disk,
    merge_patch,
    patch_from_disk,
    patch_to_disk,
    to_disk,
)

SCHEMA_VERSION = 1
META_TABLE = "_meta"
SNAPSHOT_NAME = "catalog.json"
CHANGELOG_NAME = "catalog.log"
COMPACT_MIN_BYTES = 4 << 20

Tables = dict[str, dict[str, dict[str, Any]]]


class CatalogStorage(Storage):
    """A TinyDB ``Storage`` over ``catalog.json`` + ``catalog.log`` in ``root``.

    Beyond TinyDB's ``read``/``write``, :meth:`stage` records a patch to one document
    (visible to this process at once) and :meth:`commit` appends the staged patches to
    the log for other processes to see.
    """

    def __init__(self, root: str | os.PathLike[str], lock: StoreLock):
        self._snapshot = Path(root) / SNAPSHOT_NAME
        self._changelog = Path(root) / CHANGELOG_NAME
        self._lock = lock
        self._tables: Tables = {}
        self._generation = 0
        self._snapshot_signature: tuple[int, int, int] | None = None
        self._log_offset = 0
        self._staged: dict[tuple[str, str], Patch] = {}
        self._loaded = False
        # Guards the in-memory tables against the background flusher; taken after the
        # store lock, never before it.
        self._mutex = threading.RLock()
        self._commit_lock = threading.Lock()

    # -- TinyDB's Storage interface ----------------------------------------------------

    def read(self) -> Tables | None:
        self.refresh()
        return self._tables or None

    def write(self, data: Tables) -> None:
        """Replace the catalog with ``data`` atomically (also folds in the change log)."""
        with self._lock, self._mutex:
            generation = self._generation + 1  # ours only once the new snapshot is in place
            data[META_TABLE] = {"1": {"schema": SCHEMA_VERSION, "generation": generation}}
            payload = orjson.dumps(
                {
                    name: {doc_id: to_disk(doc) for doc_id, doc in table.items()}
                    for name, table in data.items()
                }
            )
            try:
                _atomic_write(self._snapshot, payload)
            except OSError as error:
                raise _write_error(self._snapshot, error, _UNCHANGED) from error
            self._generation = generation
            # The log's records belong to the old generation now; readers would skip
            # them anyway, truncating just reclaims the space.
            with open(self._changelog, "ab") as log:
                log.truncate(0)
            self._tables = data
            self._snapshot_signature = file_signature(self._snapshot)
            self._log_offset = 0
            self._loaded = True

    def close(self) -> None:
        pass

    # -- patches ------------------------------------------------------------------------

    def stage(self, table: str, doc_id: str, patch: Patch) -> dict[str, Any]:
        """Apply ``patch`` to a document in memory and remember it for :meth:`commit`."""
        if not self._loaded:
            self.refresh()
        with self._mutex:
            key = (table, doc_id)
            pending = self._staged.get(key)
            if pending is None:
                self._staged[key] = _copy_patch(patch)
            else:
                merge_patch(pending, patch)
            return apply_patch(self._tables.setdefault(table, {}).setdefault(doc_id, {}), patch)

    def get(self, table: str, doc_id: str) -> dict[str, Any] | None:
        """A copy of one document, or None."""
        self.refresh()
        with self._mutex:
            doc = self._tables.get(table, {}).get(doc_id)
            return _copy_doc(doc) if doc is not None else None

    def value(self, table: str, doc_id: str, field: str, default: Any = None) -> Any:
        """One field of a document, without copying the document."""
        self.refresh()
        with self._mutex:
            return self._tables.get(table, {}).get(doc_id, {}).get(field, default)

    def documents(self, table: str) -> list[dict[str, Any]]:
        """The documents of a table as they are now; treat them as read-only."""
        self.refresh()
        with self._mutex:
            return list(self._tables.get(table, {}).values())

    def remove(self, table: str, doc_ids: Collection[str]) -> None:
        """Delete documents for good, in a new snapshot: the change log can patch a
        document but not take it away."""
        with self._lock, self._mutex:
            self.refresh()
            for doc_id in doc_ids:
                self._staged.pop((table, doc_id), None)
            tables = {name: dict(docs) for name, docs in self._tables.items()}
            for doc_id in doc_ids:
                tables.get(table, {}).pop(doc_id, None)
            self.write(tables)

    @property
    def has_staged(self) -> bool:
        return bool(self._staged)

    def commit(self) -> None:
        """Append every staged patch to the change log, compacting when it has grown.

        Returns only once everything staged before the call is in the log, even when
        another thread is committing at the same moment.
        """
        with self._commit_lock:
            if self._staged:
                try:
                    self._commit_staged()
                except OSError as error:
                    raise _write_error(self._changelog, error, _UNCOMMITTED) from error

    def _commit_staged(self) -> None:
        with self._lock:
            self.refresh()
            with self._mutex:
                staged, self._staged = self._staged, {}
            lines = b"".join(
                orjson.dumps(
                    {"gen": self._generation, "table": t, "id": i, "patch": patch_to_disk(patch)}
                )
                + b"\n"
                for (t, i), patch in staged.items()
            )
            try:
                with open(self._changelog, "ab") as log:
                    if log.tell() > self._log_offset:
                        log.truncate(self._log_offset)  # a torn record left by a failed write
                    log.write(lines)
                    log.flush()
                    # Not log.tell(): truncating does not move the position of an "ab" file.
                    self._log_offset = os.fstat(log.fileno()).st_size
            except OSError:
                self._restage(staged)  # for the next commit; the next one cuts a torn tail
                raise
            if self._log_offset > max(COMPACT_MIN_BYTES, self._snapshot_size()):
                # Compacting only makes later reads cheaper: if it fails (a full disk), the
                # log still holds everything, and the next commit tries again.
                with contextlib.suppress(OSError):
                    self.write(self._tables)

    def _restage(self, staged: dict[tuple[str, str], Patch]) -> None:
        with self._mutex:
            for key, newer in self._staged.items():  # staged while the commit failed
                if key in staged:
                    merge_patch(staged[key], newer)
                else:
                    staged[key] = newer
            self._staged = staged

    # -- reading other processes' changes -----------------------------------------------

    def refresh(self) -> bool:
        """Re-read what other processes committed; return True if anything was read."""
        if self._loaded and self._unchanged():
            return False
        with self._lock, self._mutex:
            signature = file_signature(self._snapshot)
            if not self._loaded or signature != self._snapshot_signature:
                self._load_snapshot(signature)
            self._read_log_tail()
            self._loaded = True
            for (table, doc_id), patch in self._staged.items():
                apply_patch(self._tables.setdefault(table, {}).setdefault(doc_id, {}), patch)
        return True

    def _unchanged(self) -> bool:
        try:
            log_size = os.stat(self._changelog).st_size
        except FileNotFoundError:
            log_size = 0
        return log_size == self._log_offset and file_signature(self._snapshot) == (
            self._snapshot_signature
        )

    def _load_snapshot(self, signature: tuple[int, int, int] | None) -> None:
        self._tables, self._generation = {}, 0
        if signature is not None:
            data = orjson.loads(self._snapshot.read_bytes())
            meta = data.get(META_TABLE, {}).get("1", {})
            if meta.get("schema", SCHEMA_VERSION) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self._snapshot} has catalog schema {meta['schema']}, newer than this "
                    f"nbtrack understands ({SCHEMA_VERSION}). Upgrade nbtrack to open it."
                )
            self._generation = meta.get("generation", 0)
            for name, table in data.items():
                if name != META_TABLE:
                    for doc in table.values():
                        from_disk(doc)
            self._tables = data
        self._snapshot_signature = signature
        self._log_offset = 0

    def _read_log_tail(self) -> None:
        lines, self._log_offset = read_lines_after(self._changelog, self._log_offset)
        for line in lines:
            record = orjson.loads(line)
            if record["gen"] == self._generation:
                doc = self._tables.setdefault(record["table"], {}).setdefault(record["id"], {})
                apply_patch(doc, patch_from_disk(record["patch"]))

    def _snapshot_size(self) -> int:
        try:
            return os.stat(self._snapshot).st_size
        except FileNotFoundError:
            return 0


_UNCOMMITTED = (
    "Nothing is lost: the runs' journals hold what was logged, and the changes wait in "
    "this process for its next commit (other processes see them then). Free space (or fix "
    "the disk) and call flush() again."
)
_UNCHANGED = (
    "The catalog on disk is unchanged, and the journals hold everything it indexes. Free "
    "space (or fix the disk) and try again."
)


def _write_error(file: Path, error: OSError, safe: str) -> StoreWriteError:
    what = f"the catalog ({file.name})"
    return StoreWriteError(
        f"Could not write {what} of the store {file.parent}: {error.strerror or error}. {safe}",
        what,
        error.errno,
    )


def _copy_doc(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}


def _copy_patch(patch: Patch) -> Patch:
    return {k: (list(v) if isinstance(v, list) else dict(v)) for k, v in patch.items()}


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """Changes whenever the file is replaced or written to; None while it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old or the new file, never half."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)  # a full disk: give back what the half-written copy took
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
