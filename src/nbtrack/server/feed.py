"""The change feed: what changed in the store, as a sequence of events that pages wait on.

A poller looks at the store every ``poll_seconds``: the catalog's files and the
registry's journal are compared by their file signatures, and when the catalog's moved it
re-reads what other processes committed (``catalog.refresh()``). Not refresh()'s answer:
any other reader in this process (a panel, a request) may have read the change first.
Each look that found something becomes one event, numbered: the runs added, changed or
removed, and whether experiments (their counts of runs and running runs among them) or
the registry changed. A page asks for the events after the last number it saw and waits
(long-poll) until there is one.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable
from typing import Any

import orjson

from nbtrack.server.settings import StoreHandle
from nbtrack.store.catalog import CHANGELOG_NAME, SNAPSHOT_NAME, file_signature

KEPT_EVENTS = 1000  # a page further behind than this reloads everything ("reset")

Listener = Callable[[dict[str, Any]], None]


class ChangeFeed:
    """Numbered change events of one store, and the pages waiting for the next one."""

    def __init__(self, handle: StoreHandle, poll_seconds: float) -> None:
        self.handle = handle
        self.poll_seconds = poll_seconds
        self.seq = 0
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT_EVENTS)
        self.listeners: list[Listener] = []  # called (in a worker thread) with each event
        self._runs: dict[str, int] | None = None  # run_id -> hash of its row
        self._experiments = 0
        self._registry: Any = None
        self._catalog: Any = None
        self._waiters: set[asyncio.Future] = set()
        self._task: asyncio.Task | None = None
        self._lock = threading.Lock()

    # -- polling ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling (once), on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                event = await loop.run_in_executor(None, self.scan)
            except Exception as exc:  # a store being rebuilt: try again at the next poll
                self.handle_error(exc)
                event = None
            if event is not None:
                self._wake()
            await asyncio.sleep(self.poll_seconds)

    def handle_error(self, exc: Exception) -> None:
        import logging

        logging.getLogger("nbtrack.server").warning("change feed: %s", exc)

    def scan(self) -> dict[str, Any] | None:
        """Look once; the new event, or None when nothing changed."""
        store = self.handle.existing()
        if store is None:
            return None
        with self._lock:
            # Signatures first: a commit after them moves them again for the next look.
            catalog = tuple(file_signature(store.root / n) for n in (SNAPSHOT_NAME, CHANGELOG_NAME))
            registry = file_signature(store.registry.path)
            store.catalog.refresh()
            first = self._runs is None
            if not (first or catalog != self._catalog or registry != self._registry):
                return None
            self._catalog = catalog
            rows = store.runs()
            added, changed, removed = self._diff_runs(rows)
            experiments = hash(orjson.dumps([store.experiments(), run_counts(rows)]))
            event = {
                "added": added,
                "changed": changed,
                "removed": removed,
                "experiments": experiments != self._experiments,
                "registry": registry != self._registry,
            }
            self._experiments, self._registry = experiments, registry
            if first or not any(event.values()):
                return None  # the first look only learns what is there
            self.seq += 1
            event["seq"] = self.seq
            self.events.append(event)
        for listener in list(self.listeners):
            listener(event)
        return event

    def _diff_runs(self, rows: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
        seen = {row["run_id"]: hash(orjson.dumps(row)) for row in rows}
        before = self._runs or {}
        self._runs = seen
        added = [run_id for run_id in seen if run_id not in before]
        changed = [r for r, h in seen.items() if r in before and before[r] != h]
        removed = [run_id for run_id in before if run_id not in seen]
        return added, changed, removed

    # -- waiting ------------------------------------------------------------------------------

    def since(self, after: int) -> dict[str, Any]:
        """The events after number ``after``, merged; ``reset`` when some were dropped."""
        with self._lock:
            events = [e for e in self.events if e["seq"] > after]
            oldest = self.events[0]["seq"] if self.events else self.seq + 1
        merged: dict[str, Any] = {"seq": self.seq, "reset": after < oldest - 1 and after >= 0}
        for kind in ("added", "changed", "removed"):
            merged[kind] = list(dict.fromkeys(i for e in events for i in e[kind]))
        for kind in ("experiments", "registry"):
            merged[kind] = any(e[kind] for e in events)
        return merged

    async def wait(self, after: int, timeout: float) -> dict[str, Any]:
        """The events after ``after``, waiting up to ``timeout`` seconds for one."""
        self.start()
        if after < 0 or self.seq > after:
            return self.since(after)
        await wait_for_wake(self._waiters, timeout)
        return self.since(after)

    def _wake(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)


def run_counts(rows: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Each experiment's active runs and how many of them are running (what the sidebar's
    experiment picker shows), by experiment id."""
    counts: dict[str, list[int]] = {}
    for row in rows:
        if row.get("lifecycle_stage", "active") == "active":
            count = counts.setdefault(row["experiment_id"], [0, 0])
            count[0] += 1
            count[1] += row.get("status") == "RUNNING"
    return counts


async def wait_for_wake(waiters: set[asyncio.Future[None]], timeout: float) -> None:
    """Wait until a future put in ``waiters`` is resolved (a wake) or ``timeout`` passes."""
    waiter = asyncio.get_running_loop().create_future()
    waiters.add(waiter)
    try:
        await asyncio.wait_for(asyncio.shield(waiter), timeout)
    except asyncio.TimeoutError:
        pass
    finally:
        waiters.discard(waiter)
