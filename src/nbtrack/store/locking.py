"""The store's inter-process lock: one writer at a time for the catalog and experiments.

It is the outermost of the store's locks: a thread holding it may take the registry's
and then the catalog's mutex (a run writer's lock also comes before the catalog's
mutex), and takes it again freely; a thread that does not hold it never waits for it
while holding any of those, or two threads can wait on each other for good (a catalog
commit once did).
"""

from __future__ import annotations

import errno
import os
import threading
import time

from nbtrack.errors import StoreError, StoreReadOnlyError

try:
    import fcntl
except ImportError:  # Windows: filelock's msvcrt lock instead
    fcntl = None  # type: ignore[assignment]

LOCK_TIMEOUT_SECONDS = 60.0
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


class StoreLock:
    """A re-entrant lock held across threads of this process and across processes.

    An exclusive ``flock`` on the lock file serializes processes (``filelock`` where
    there is no ``fcntl``); the thread lock in front of it serializes this process's
    threads (the background flusher and the user's code), so the file lock is taken
    once per outermost ``with``. The file is opened for each outermost ``with`` and
    closed after it, so a forked child never shares a held lock.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = LOCK_TIMEOUT_SECONDS):
        self.path = os.fspath(path)
        self._timeout = timeout
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd = -1
        self._fallback = None
        if fcntl is None:
            import filelock  # deferred: it costs ~90 ms of `import nbtrack` otherwise

            self._fallback = filelock.FileLock(self.path, thread_local=False)

    def __enter__(self) -> StoreLock:
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                self._acquire()
            except BaseException:
                self._thread_lock.release()
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._release()
        self._thread_lock.release()

    def _acquire(self) -> None:
        if self._fallback is not None:
            self._acquire_fallback()
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            if error.errno in _READ_ONLY:
                raise StoreReadOnlyError(
                    f"The store {os.path.dirname(self.path)} is read-only here: its lock "
                    f"file cannot be opened for writing ({error.strerror}). Reading it works; "
                    "to write, use a store you can write to."
                ) from None
            raise
        deadline = time.monotonic() + self._timeout
        pause = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise self._timed_out() from None
                time.sleep(pause)
                pause = min(pause * 2, 0.02)

    def _release(self) -> None:
        if self._fallback is not None:
            self._fallback.release()
            return
        fd, self._fd = self._fd, -1
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _acquire_fallback(self) -> None:
        import filelock

        try:
            self._fallback.acquire(timeout=self._timeout)
        except filelock.Timeout:
            raise self._timed_out() from None

    def _timed_out(self) -> StoreError:
        return StoreError(
            f"Could not lock the store within {self._timeout:.0f}s ({self.path}). "
            "Another process holds it; if none is running, delete the lock file."
        )
