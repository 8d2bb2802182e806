"""A run's params, tags and metric points cut into ``log_batch`` requests at MLflow's
limits: 1,000 entries (at most 100 params and 100 tags), under 1 MB of JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from nbtrack.sync.server import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_BATCH_PARAMS, MAX_BATCH_TAGS

Point = tuple[str, float, int, int]  # key, value, timestamp (ms), step

_METRIC_BYTES = 80  # {"key":"","value":-1.2345678901234567e+308,"timestamp":..,"step":..},
_PAIR_BYTES = 24  # {"key":"","value":""},
_HEADROOM = 0.9  # the request's run_id and brackets, and a margin


class Batch(NamedTuple):
    metrics: list[Point]
    params: list[tuple[str, str]]
    tags: list[tuple[str, str]]

    @property
    def size(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)


def batches(
    params: dict[str, str], tags: dict[str, str], points: Iterable[Point]
) -> Iterator[Batch]:
    """The fewest requests: params and tags spread over the first ones (100 of each a
    request), points filling what room is left, then requests of their own."""
    budget = int(MAX_BATCH_BYTES * _HEADROOM)
    out: list[Batch] = []
    entries: list[int] = []  # per request: its entries, bytes, params and tags so far
    sizes: list[int] = []
    kinds: dict[str, list[int]] = {"params": [], "tags": []}

    def place(kind: str, limit: int, cost: int, start: int) -> int:
        """The first request from ``start`` with room for one more ``kind``; its index."""
        counts = kinds.get(kind, entries)
        at = start
        while at < len(out) and (
            entries[at] >= MAX_BATCH_ENTRIES or counts[at] >= limit or sizes[at] + cost > budget
        ):
            at += 1
        if at == len(out):
            out.append(Batch([], [], []))
            entries.append(0)
            sizes.append(0)
            for column in kinds.values():
                column.append(0)
        entries[at] += 1
        sizes[at] += cost
        if counts is not entries:
            counts[at] += 1
        return at

    at = 0
    for key, value in params.items():
        at = place("params", MAX_BATCH_PARAMS, _pair_cost(key, value), at)
        out[at].params.append((key, value))
    at = 0
    for key, value in tags.items():
        at = place("tags", MAX_BATCH_TAGS, _pair_cost(key, value), at)
        out[at].tags.append((key, value))
    at, key_cost = 0, {}
    for point in points:
        cost = key_cost.get(point[0])
        if cost is None:
            cost = key_cost[point[0]] = _METRIC_BYTES + _json_len(point[0])
        at = place("metrics", MAX_BATCH_ENTRIES, cost, at)
        out[at].metrics.append(point)
    return iter(out)


def _pair_cost(key: str, value: str) -> int:
    return _PAIR_BYTES + _json_len(key) + _json_len(value)


def _json_len(text: str) -> int:
    return len(json.dumps(text))  # as sent: non-ASCII characters escaped
