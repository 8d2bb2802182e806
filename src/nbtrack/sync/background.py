"""Background sync: each run the default session ends is pushed by a daemon thread.

The session's end hook only queues the run (a list append under a lock), so a cell never
waits for the network. The thread pushes what is queued, oldest first; when the server
cannot be reached or keeps failing, the runs stay queued and the thread tries again
after 1, 2, 4 … 60 s. ``%track`` shows the queue and the last error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbtrack.errors import NbtrackError
from nbtrack.store import Store
from nbtrack.sync.server import Server, display_uri
from nbtrack.tracking import context, fluent

MAX_BACKOFF = 60.0  # s between tries while the server fails
SETTLE = 0.05  # s between looks at a run that is still being ended


class AutoSync:
    """Pushes ended runs of the default session to ``server`` from a daemon thread, over
    one connection whose server is checked (version, credentials) on the first push and
    again after a failure."""

    def __init__(self, server: str, push: Callable[..., Any]) -> None:
        self.uri = server
        self.server = display_uri(server)
        self._push = push
        self._connection: Server | None = None  # checked once, again after a failure
        self._queue: list[tuple[Store, str | None]] = []  # None: everything not yet pushed
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.failures = 0
        self.last_error: str | None = None
        self.pushed = 0
        self._thread = threading.Thread(target=self._work, name="nbtrack-sync", daemon=True)

    def start(self, store: Store) -> None:
        self.queue(store, None)  # what earlier sessions left unpushed goes first
        fluent.default_session().run_end_hooks.append(self.run_ended)
        context.add_status_note(self.note)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the push in progress; what is queued stays for the next push."""
        hooks = fluent.default_session().run_end_hooks
        if self.run_ended in hooks:
            hooks.remove(self.run_ended)
        context.remove_status_note(self.note)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def run_ended(self, run_id: str, status: str) -> None:
        """The session's end hook: queue the run, nothing more."""
        self.queue(fluent.default_session().store, run_id)

    def queue(self, store: Store, run_id: str | None) -> None:
        with self._lock:
            self._queue.append((store, run_id))
        self._wake.set()

    def pending(self) -> list[str]:
        """The runs queued (``"*"`` for a push of everything not yet pushed)."""
        with self._lock:
            return [run_id or "*" for _, run_id in self._queue]

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the queue is empty (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._queue and not self._busy:
                    return True
            time.sleep(0.02)
        return False

    _busy = False

    def note(self) -> str:
        """The line ``%track`` shows."""
        waiting = self.pending()
        if not waiting:
            return f"sync: on, to {self.server}; nothing pending ({self.pushed} pushes)"
        text = f"sync: on, to {self.server}; {len(waiting)} pending"
        if self.last_error:
            text += f" (retrying: {self.last_error})"
        return text

    # -- the thread ----------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._backoff())
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                batch = list(self._queue)
                self._busy = bool(batch)
            if batch:
                self._push_batch(batch)
            self._busy = False

    def _backoff(self) -> float | None:
        if not self.failures:
            return None  # sleep until a run is queued
        return min(MAX_BACKOFF, 2.0 ** (self.failures - 1))

    def _push_batch(self, batch: list[tuple[Store, str | None]]) -> None:
        by_store: dict[Path, tuple[Store, set[str | None]]] = {}
        for store, run_id in batch:
            by_store.setdefault(store.root, (store, set()))[1].add(run_id)
        try:
            connection = self._connection or Server(self.uri)
            for store, run_ids in by_store.values():
                ids = None if None in run_ids else sorted(r for r in run_ids if r)
                if ids:
                    _settle(store, ids)
                self._push(connection, store, None, "", ids, False)
            self._connection = connection
        except Exception as error:  # the network, the server: try again later
            self._connection = None
            self.failures += 1
            self.last_error = str(error) if isinstance(error, NbtrackError) else repr(error)
            return
        with self._lock:
            self._queue = self._queue[len(batch) :]
        self.failures, self.last_error = 0, None
        self.pushed += 1


def _settle(store: Store, run_ids: list[str], timeout: float = 5.0) -> None:
    """Wait until the runs' end is recorded: the hook runs just before the store writes
    the status that ends the run."""
    deadline = time.monotonic() + timeout
    for run_id in run_ids:
        while store.writer(run_id) is not None and time.monotonic() < deadline:
            time.sleep(SETTLE)


_auto: AutoSync | None = None


def auto(server: str | None, push: Callable[..., Any]) -> AutoSync | None:
    """Turn background sync on to ``server`` (None: off); the running AutoSync."""
    global _auto
    if _auto is not None:
        _auto.stop()
        _auto = None
    if server is not None:
        _auto = AutoSync(server, push)
        _auto.start(fluent.current_store())
    return _auto


def current() -> AutoSync | None:
    return _auto
