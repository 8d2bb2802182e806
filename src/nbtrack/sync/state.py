"""What a store knows of one tracking server: which runs map to which, how far each was
pushed (its watermark), what was pulled, the registry events sent, and recorded conflicts.

``<store>/sync/<key>.json``, one file per server (``key`` is a digest of the server's URI
without credentials, which are never stored), rewritten atomically (a temporary file,
fsync, rename) after each run or registry event reaches the server, so a push killed at
any moment resumes from the last one that did. ``<key>.lock`` makes one push or pull at a
time per store and server, across processes.

::

    {"server": "http://host:5000",
     "runs": {local_run_id: {"remote": remote_run_id, "offset": journal bytes pushed,
                             "tags": {...}, "attrs": {...}}, ...},   # as last synced
     "creating": [local_run_id, ...],   # create_run sent, remote id not yet recorded
     "experiments": {name: remote_experiment_id},
     "pulled": {remote_run_id: fingerprint},
     "registry": {"seq": last event sent, "models": {model_id: name},
                  "versions": {"model_id/version": remote_version}, "creating": seq|None},
     "conflicts": [{"run", "field", "kept", "lost", "lost_side", "time"}, ...]}
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock, Timeout

from nbtrack.errors import SyncError
from nbtrack.store import Store

SYNC_DIR = "sync"
LOCK_TIMEOUT = 600  # s: another push or pull of this store to this server is running


class SyncState:
    """The state file of one store and server, held while a push or pull runs."""

    def __init__(self, store: Store, server: str) -> None:
        self.store = store
        self.server = server
        self.path = _base(store, server).with_suffix(".json")
        self.data: dict[str, Any] = self._load()
        self._mutex = threading.Lock()

    def _load(self) -> dict[str, Any]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            data = {}
        data.setdefault("server", self.server)
        for name in ("runs", "experiments", "pulled"):
            data.setdefault(name, {})
        data.setdefault("creating", [])
        data.setdefault("conflicts", [])
        registry = data.setdefault("registry", {})
        registry.setdefault("seq", 0)
        registry.setdefault("models", {})
        registry.setdefault("versions", {})
        registry.setdefault("creating", None)
        return data

    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        return self.data["runs"]

    @property
    def registry(self) -> dict[str, Any]:
        return self.data["registry"]

    def remote_id(self, run_id: str) -> str | None:
        entry = self.runs.get(run_id)
        return entry["remote"] if entry else None

    def local_id(self, remote_id: str) -> str | None:
        for run_id, entry in self.runs.items():
            if entry["remote"] == remote_id:
                return run_id
        return None

    def update(self, change: Any = None) -> None:
        """Apply ``change(data)`` (if given) and write the file, atomically."""
        with self._mutex:
            if change is not None:
                change(self.data)
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(orjson.dumps(self.data))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def record_conflict(self, conflict: dict[str, Any]) -> None:
        self.update(lambda data: data["conflicts"].append(conflict))


@contextlib.contextmanager
def held(store: Store, server: str) -> Iterator[SyncState]:
    """The server's sync state, locked against other pushes and pulls of this store."""
    lock_path = _base(store, server).with_suffix(".lock")
    lock_path.parent.mkdir(exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=LOCK_TIMEOUT)
    except Timeout:
        raise SyncError(
            f"Another push or pull of {store.root} to {server} has held {lock.lock_file} for "
            f"{LOCK_TIMEOUT} s; wait for it to finish, or end that process."
        ) from None
    try:
        yield SyncState(store, server)  # read under the lock: the other one may have written
    finally:
        lock.release()


def _base(store: Store, server: str) -> Path:
    return store.root / SYNC_DIR / hashlib.sha256(server.encode()).hexdigest()[:16]


def peek(store: Store, server: str) -> SyncState:
    """The state as last written, without the lock (for ``sync status``)."""
    return SyncState(store, server)


def known_servers(store: Store) -> list[str]:
    """Every server this store has synced with."""
    folder = Path(store.root) / SYNC_DIR
    if not folder.exists():
        return []
    return sorted(orjson.loads(p.read_bytes())["server"] for p in folder.glob("*.json"))
