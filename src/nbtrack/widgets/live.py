"""The watcher: one daemon thread that keeps live panels current while cells run.

While a cell runs, the kernel's main thread is busy with the user's code, so no timer on
its event loop fires; a thread is the only way to redraw a chart mid-cell. Each task's
``tick()`` is called at most every ``min_interval`` seconds, and never sooner than
:data:`BUDGET` times as long as its last tick took; after any tick the thread rests
BUDGET - 1 times as long as that tick took. So the watcher spends at most 1/BUDGET of
the time holding the GIL, however large the data grows and however many panels are
open. The thread sleeps on an event when there is nothing to watch.

A task scheduled from a cell keeps that cell's context (``contextvars``), so displays and
widget messages it sends from this thread are routed to that cell, as if the cell made them.
"""

from __future__ import annotations

import contextvars
import threading
import time
import warnings
import weakref
from typing import Protocol

TICK_SECONDS = 0.1  # how often the idle thread looks for due tasks
MIN_INTERVAL = 0.25  # at most 4 redraws a second
BUDGET = 20  # wait >= 20x the time a tick took: the watcher uses <= 5% of the time


class Task(Protocol):
    def tick(self) -> bool:
        """Do one update; return False when no more updates are needed."""


class _Entry:
    __slots__ = ("context", "due", "min_interval", "ref")

    def __init__(self, task: Task, min_interval: float, context: contextvars.Context) -> None:
        self.ref = weakref.ref(task)
        self.min_interval = min_interval
        self.due = time.monotonic() + min_interval
        self.context = context


_entries: dict[int, _Entry] = {}
# What the watcher has spent, for benchmarks: ticks run, seconds inside them (wall, and
# the watcher thread's CPU).
stats = {"ticks": 0, "seconds": 0.0, "cpu": 0.0}
_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None


def schedule(task: Task, min_interval: float = MIN_INTERVAL) -> None:
    """Call ``task.tick()`` from the watcher thread until it returns False (or is cancelled)."""
    global _thread
    entry = _Entry(task, min_interval, contextvars.copy_context())
    with _lock:
        _entries[id(task)] = entry
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="nbtrack-panels", daemon=True)
            _thread.start()
    _wake.set()


def cancel(task: Task) -> None:
    """Stop ticking ``task``; a tick in progress finishes first (callers hold its lock)."""
    with _lock:
        _entries.pop(id(task), None)


def scheduled(task: Task) -> bool:
    with _lock:
        return id(task) in _entries


def _run() -> None:
    while True:
        with _lock:
            entries = list(_entries.items())
            if not entries:
                _wake.clear()
        if not entries:
            _wake.wait()
            continue
        now = time.monotonic()
        due = [(entry.due, key, entry) for key, entry in entries if entry.due <= now]
        if not due:
            time.sleep(TICK_SECONDS)
            continue
        # The most overdue task first; then rest BUDGET - 1 times as long as it took,
        # so all tasks together (several charts, a table over 10,000 runs) stay within
        # 1/BUDGET of the time, not each of them.
        _, key, entry = min(due, key=lambda item: item[0])
        cost = _tick(key, entry)
        time.sleep(max(TICK_SECONDS, (BUDGET - 1) * cost))


def _tick(key: int, entry: _Entry) -> float:
    """Run one task's tick; reschedule or drop it; return what it cost (seconds)."""
    task = entry.ref()
    keep = False
    started, cpu = time.perf_counter(), time.thread_time()
    if task is not None:
        try:
            keep = entry.context.run(task.tick)
        except Exception as exc:  # one broken panel must not stop the others
            warnings.warn(f"nbtrack: a live panel stopped updating: {exc!r}", stacklevel=1)
    cost = time.perf_counter() - started
    stats["ticks"] += 1
    stats["seconds"] += cost
    stats["cpu"] += time.thread_time() - cpu
    with _lock:
        if _entries.get(key) is not entry:
            return cost  # cancelled or rescheduled meanwhile
        if keep:
            entry.due = time.monotonic() + max(entry.min_interval, BUDGET * cost)
        else:
            del _entries[key]
    return cost


def clear() -> None:
    """Forget every task (the thread stays, asleep until the next schedule)."""
    with _lock:
        _entries.clear()
