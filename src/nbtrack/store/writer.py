"""Open runs: the journal each appends to, its metric buffer, and the thread that flushes it.

``log_metric`` in a training loop must cost about a list append, so points go to
``RunWriter.points`` and reach the journal in batches: when asked (cell end, run end,
``flush()``), and from a background thread at least once a second or whenever a
buffer has grown large.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtrack.errors import RunStateError, StoreWriteError
from nbtrack.store.journal import Journal
from nbtrack.store.records import POINT_WIDTH, metric_records, to_patch

if TYPE_CHECKING:
    from nbtrack.store.store import Store

FLUSH_INTERVAL_SECONDS = 1.0
FLUSH_TICK_SECONDS = 0.05  # how often it looks: a hot loop buffers ~50,000 points meanwhile
FLUSH_AT_ITEMS = 100_000 * POINT_WIDTH  # bounds the buffer's memory in very hot loops


class RunWriter:
    """A run opened for logging by this process.

    ``points`` is the metric buffer: callers ``extend`` it with ``(key, value, step,
    time_ms)`` directly (see records.POINT_WIDTH). Everything else is written to the
    journal at once.
    """

    def __init__(self, store: Store, run_id: str) -> None:
        # Flushing packs columns with numpy. Import it here, in the caller's thread: an
        # import in the background thread, racing a training loop for the GIL, takes
        # ten times longer while the buffer grows.
        import numpy  # noqa: F401

        self.run_id = run_id
        self.points: list = []
        self.store = store
        self._journal = Journal(store.journal_path(run_id))
        self._lock = threading.Lock()
        self.last_flush = time.monotonic()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record to the journal and its patch to the catalog row."""
        with self._lock:
            try:
                self._journal.append(record)
            except OSError as error:
                raise self._write_error(error, record_not_written(record["op"])) from error
        self._stage(record)

    def flush(self, durable: bool = False) -> int:
        """Write buffered points; with ``durable``, fsync the journal. Returns points written."""
        with self._lock:
            # Points from other threads may land while we write: take prefixes and delete
            # exactly those, never swap the list out from under them. Each extend of a
            # point is atomic, so a prefix holds whole points. Chunks bound the memory
            # a large buffer needs while it is encoded.
            remaining = count = len(self.points)
            try:
                while remaining:
                    take = min(remaining, FLUSH_AT_ITEMS)
                    records = metric_records(self.points[:take])
                    self._journal.append_many(records)  # all of them or none (journal.py)
                    del self.points[:take]
                    for record in records:
                        self._stage(record)
                    remaining -= take
                if durable:
                    self._journal.sync()
            except OSError as error:
                raise self._write_error(error, self._buffered_note()) from error
            self.last_flush = time.monotonic()
        return count // POINT_WIDTH

    def snapshot(self) -> tuple[int, list]:
        """The journal's length and a copy of the buffered points, read under the lock so
        that a flush cannot move points in between: each point is in exactly one of the
        two. ``log_metric`` never takes that lock."""
        with self._lock:
            try:
                size = os.stat(self._journal.path).st_size
            except FileNotFoundError:
                size = 0
            return size, self.points[:]

    def accept_points(self, accept: bool) -> None:
        """Refuse new points from now on (the run was deleted), or accept them again.
        Callers hold this writer's ``points`` list, so the list itself is replaced."""
        self.flush()
        self.points = [] if accept else _RefusingBuffer(self.run_id)

    def close(self, durable: bool = False) -> Path:
        """Write what is buffered and close the journal; return its path."""
        self.flush(durable=durable)
        with self._lock:
            self._journal.close()
        return self._journal.path

    def _buffered_note(self) -> str:
        pending = len(self.points) // POINT_WIDTH
        return (
            "Metric points logged before the last successful flush are on disk; the "
            f"{pending} logged since are still buffered in this process (lost if it exits "
            "first). Free space (or fix the disk) and call flush() again to write them."
        )

    def _write_error(self, error: OSError, safe: str) -> StoreWriteError:
        return journal_write_error(self.store, self.run_id, error, safe)

    def _stage(self, record: dict[str, Any]) -> None:
        patch = to_patch(record)
        if patch is not None:
            self.store.catalog.stage("runs", self.run_id, patch)


class _RefusingBuffer(list):
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


def journal_write_error(store: Store, run_id: str, error: OSError, safe: str) -> StoreWriteError:
    """The error for a failed append to a run's journal: the store, the file, what is safe."""
    what = f"run {run_id}'s journal ({store.journal_path(run_id)})"
    return StoreWriteError(
        f"Could not write {what} in the store {store.root}: {error.strerror or error}. {safe}",
        what,
        error.errno,
    )


def record_not_written(op: str) -> str:
    """What is safe when an append of ``op`` records failed."""
    return (
        f"This {op} record was not written; everything written before it is on disk. "
        "Free space (or fix the disk) and log it again."
    )


class Flusher:
    """A daemon thread that keeps buffers short and the catalog current for other processes."""

    def __init__(self, writers: Callable[[], list[RunWriter]], every_second: Callable[[], None]):
        self._writers = writers
        self._every_second = every_second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nbtrack-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_commit = time.monotonic()
        failing = False
        while not self._stop.wait(FLUSH_TICK_SECONDS):
            now = time.monotonic()
            try:
                for writer in self._writers():
                    due = now - writer.last_flush >= FLUSH_INTERVAL_SECONDS
                    if len(writer.points) >= FLUSH_AT_ITEMS or (due and writer.points):
                        writer.flush()
                if now - last_commit >= FLUSH_INTERVAL_SECONDS:
                    self._every_second()
                    last_commit = now
                failing = False
            except Exception as exc:  # keep flushing later; never kill the thread silently
                if not failing:  # once per streak: a full disk fails five times a second
                    warnings.warn(f"nbtrack could not flush in the background: {exc}", stacklevel=1)
                failing = True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
