"""A run's params, tags and metric points cut into ``log_batch`` requests at MLflow's
limits: 1,000 entries (at most 100 params and 100 tags), under 1 MB of JSON.

Points arrive as one series a metric, already in the request's JSON form, and are placed
a slice at a time: a background push does this for every run, beside a training loop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from nbtrack.sync.server import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_BATCH_PARAMS, MAX_BATCH_TAGS

Series = tuple[str, list[dict[str, Any]]]  # a metric's key and its points, as sent

_METRIC_BYTES = 80  # {"key":"","value":-1.2345678901234567e+308,"timestamp":..,"step":..},
_PAIR_BYTES = 24  # {"key":"","value":""},
_HEADROOM = 0.9  # the request's run_id and brackets, and a margin


class Batch(NamedTuple):
    metrics: list[dict[str, Any]]
    params: list[tuple[str, str]]
    tags: list[tuple[str, str]]

    @property
    def size(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)


def series(key: str, steps: list[int], values: list[float], times: list[int]) -> Series:
    """One metric's points in ``log_batch``'s JSON form (NaN and infinities as strings,
    as protobuf's JSON mapping spells them)."""
    if not all(map(math.isfinite, values)):
        values = [_json_float(v) for v in values]
    points = [
        {"key": key, "value": v, "timestamp": t, "step": s}
        for s, v, t in zip(steps, values, times, strict=True)
    ]
    return key, points


def _json_float(value: float) -> float | str:
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def batches(
    params: dict[str, str], tags: dict[str, str], metrics: Iterable[Series]
) -> Iterator[Batch]:
    """The fewest requests: params and tags spread over the first ones (100 of each a
    request), points filling what room is left, then requests of their own."""
    budget = int(MAX_BATCH_BYTES * _HEADROOM)
    out: list[Batch] = []
    entries: list[int] = []  # per request: its entries, bytes, params and tags so far
    sizes: list[int] = []
    kinds: dict[str, list[int]] = {"params": [], "tags": []}

    def room(at: int, counts: list[int], limit: int, cost: int) -> int:
        free = min(
            MAX_BATCH_ENTRIES - entries[at], limit - counts[at], (budget - sizes[at]) // cost
        )
        return max(free, 1) if entries[at] == 0 else free  # an oversized entry goes alone

    def place(kind: str, limit: int, cost: int, start: int, wanted: int) -> tuple[int, int]:
        """The first request from ``start`` with room for ``kind``: its index, and how
        many of ``wanted`` it takes."""
        counts = kinds.get(kind, entries)
        at = start
        while at < len(out) and room(at, counts, limit, cost) <= 0:
            at += 1
        if at == len(out):
            out.append(Batch([], [], []))
            entries.append(0)
            sizes.append(0)
            for column in kinds.values():
                column.append(0)
        taken = min(wanted, room(at, counts, limit, cost))
        entries[at] += taken
        sizes[at] += taken * cost
        if counts is not entries:
            counts[at] += taken
        return at, taken

    at = 0
    for key, value in params.items():
        at, _ = place("params", MAX_BATCH_PARAMS, _pair_cost(key, value), at, 1)
        out[at].params.append((key, value))
    at = 0
    for key, value in tags.items():
        at, _ = place("tags", MAX_BATCH_TAGS, _pair_cost(key, value), at, 1)
        out[at].tags.append((key, value))
    at = 0
    for key, points in metrics:
        cost, done = _METRIC_BYTES + _json_len(key), 0
        while done < len(points):
            at, taken = place("metrics", MAX_BATCH_ENTRIES, cost, at, len(points) - done)
            out[at].metrics.extend(points[done : done + taken])
            done += taken
    return iter(out)


def _pair_cost(key: str, value: str) -> int:
    return _PAIR_BYTES + _json_len(key) + _json_len(value)


def _json_len(text: str) -> int:
    return len(json.dumps(text))  # as sent: non-ASCII characters escaped
