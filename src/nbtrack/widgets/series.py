"""Metric series for charts: read incrementally from a run's journal and live buffer,
downsampled to what a browser can draw, and smoothed.

A :class:`SeriesReader` remembers how far into a run's journal it has read, so each
refresh of a live chart parses only the records appended since, plus the points still
in the run's in-memory buffer. It never touches ``log_metric``'s path: the buffer is
copied from another thread under the writer's lock, which ``log_metric`` never takes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nbtrack.store.records import POINT_WIDTH, metric_columns

if TYPE_CHECKING:
    from nbtrack.store import Store

MAX_POINTS = 2000  # per series sent to the browser

Columns = tuple[np.ndarray, np.ndarray, np.ndarray]  # steps (int64), values (f8), times (ms)


class SeriesReader:
    """Every metric point of one run, kept as numpy columns per key."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.run_id = run_id
        self._store = store
        self._path: Path = store.journal_path(run_id)
        self._offset = 0
        self._chunks: dict[str, list[Columns]] = {}
        self._tail: dict[str, Columns] = {}  # points still in the live buffer
        self._tail_size = 0
        self._cache: dict[str, tuple[int, Columns]] = {}  # key -> (version, columns)
        self.version = 0  # bumped whenever a read found something new

    def update(self) -> bool:
        """Read what was logged since the last call; True if there was anything."""
        snapshot = self._store.unflushed(self.run_id)
        if snapshot is None:  # not open for writing here: the journal holds everything
            size, buffer = _size(self._path), []
        else:
            size, buffer = snapshot
        grew = self._read_journal(size)
        tail_size = len(buffer)
        if grew or tail_size != self._tail_size:
            self._tail = _group(buffer)
            self._tail_size = tail_size
            self.version += 1
            return True
        return False

    def _read_journal(self, size: int) -> bool:
        if size <= self._offset:
            return False
        start = self._offset
        records, self._offset = self._store.records_after(self.run_id, start, "metrics", size)
        for record in records:
            self._chunks.setdefault(record["key"], []).append(metric_columns(record))
        return self._offset > start

    def metric_keys(self) -> list[str]:
        return sorted(set(self._chunks) | set(self._tail))

    def columns(self, key: str) -> Columns:
        """All points of ``key`` in logged order (journal first, then the buffer)."""
        cached = self._cache.get(key)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        columns = self._concatenate(key)
        self._cache[key] = (self.version, columns)
        return columns

    def _concatenate(self, key: str) -> Columns:
        parts = list(self._chunks.get(key, []))
        if len(parts) > 1:  # keep one array per key, so later calls concatenate less
            merged = tuple(np.concatenate(c) for c in zip(*parts, strict=True))
            self._chunks[key] = parts = [merged]  # type: ignore[list-item]
        if key in self._tail:
            parts = [*parts, self._tail[key]]
        if not parts:
            return _empty()
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(c) for c in zip(*parts, strict=True))  # type: ignore[return-value]


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _empty() -> Columns:
    return np.empty(0, "<i8"), np.empty(0, "<f8"), np.empty(0, "<i8")


def _group(buffer: list) -> dict[str, Columns]:
    """The flat buffer (key, value, step, time, ...) as columns per key."""
    if not buffer:
        return {}
    keys = buffer[0::POINT_WIDTH]
    values = np.asarray(buffer[1::POINT_WIDTH], dtype="<f8")
    steps = np.asarray(buffer[2::POINT_WIDTH], dtype="<i8")
    times = np.asarray(buffer[3::POINT_WIDTH], dtype="<f8").astype("<i8")
    unique = set(keys)
    if len(unique) == 1:
        return {keys[0]: (steps, values, times)}
    labels = np.asarray(keys, dtype=object)
    grouped = {}
    for key in unique:
        mask = labels == key
        grouped[key] = (steps[mask], values[mask], times[mask])
    return grouped


def in_step_order(columns: Columns) -> Columns:
    """Sorted by step (stably, so points logged at one step keep their order)."""
    steps = columns[0]
    if len(steps) < 2 or bool(np.all(steps[1:] >= steps[:-1])):
        return columns
    order = np.argsort(steps, kind="stable")
    return tuple(c[order] for c in columns)  # type: ignore[return-value]


def downsample(values: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` points that keep the series' shape (min/max buckets).

    The points are split into ``limit // 2`` buckets of consecutive points, and each
    bucket keeps its lowest and highest value, so spikes survive where sampling every
    n-th point would drop them. First and last points are always kept. O(n), vectorized.
    """
    n = len(values)
    if n <= limit:
        return np.arange(n)
    buckets = max(1, limit // 2 - 1)
    width = -(-n // buckets)  # ceil
    padded = buckets * width
    # NaN never wins a bucket; padding sorts last in both directions.
    low = np.full(padded, np.inf)
    high = np.full(padded, -np.inf)
    finite = np.where(np.isnan(values), np.inf, values)
    low[:n] = finite
    high[:n] = np.where(np.isnan(values), -np.inf, values)
    starts = np.arange(buckets) * width
    picks = np.concatenate(
        [
            starts + low.reshape(buckets, width).argmin(axis=1),
            starts + high.reshape(buckets, width).argmax(axis=1),
            [0, n - 1],
        ]
    )
    return np.unique(picks[picks < n])


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average; NaNs are carried over."""
    if weight <= 0 or len(values) == 0:
        return values
    out = np.empty(len(values))
    last, count = 0.0, 0
    for i, value in enumerate(values.tolist()):  # a recurrence: no vectorized form
        if value != value:
            out[i] = out[i - 1] if i else value
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        out[i] = last / (1 - weight**count)
    return out
