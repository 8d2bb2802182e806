"""The store's inter-process lock: one writer at a time for the catalog and experiments."""

from __future__ import annotations

import os
import threading

from nbtrack.errors import StoreError

LOCK_TIMEOUT_SECONDS = 60.0


class StoreLock:
    """A re-entrant lock held across threads of this process and across processes.

    ``filelock`` serializes processes; the thread lock in front of it serializes this
    process's threads (the background flusher and the user's code), so the file lock
    is taken once per outermost ``with``.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = LOCK_TIMEOUT_SECONDS):
        self.path = os.fspath(path)
        self._timeout = timeout
        import filelock  # deferred: it costs ~90 ms of `import nbtrack` otherwise

        self._file_lock = filelock.FileLock(self.path, thread_local=False)
        self._timeout_error = filelock.Timeout
        self._thread_lock = threading.RLock()
        self._depth = 0

    def __enter__(self) -> StoreLock:
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                self._file_lock.acquire(timeout=self._timeout)
            except self._timeout_error:
                self._thread_lock.release()
                raise StoreError(
                    f"Could not lock the store within {self._timeout:.0f}s ({self.path}). "
                    "Another process holds it; if none is running, delete the lock file."
                ) from None
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._file_lock.release()
        self._thread_lock.release()
