"""A run's params, tags and metric points cut into ``log_batch`` requests at MLflow's
limits: 1,000 entries (at most 100 params and 100 tags), under 1 MB of JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from nbtrack.sync.server import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_BATCH_PARAMS, MAX_BATCH_TAGS

Point = tuple[str, float, int, int]  # key, value, timestamp (ms), step

_METRIC_BYTES = 80  # {"key":"","value":-1.2345678901234567e+308,"timestamp":..,"step":..},
_PAIR_BYTES = 24  # {"key":"","value":""},
_HEADROOM = 0.9  # the request's run_id and brackets, and a margin


class Batch(NamedTuple):
    metrics: list[Any]  # mlflow.entities.Metric
    params: list[Any]  # mlflow.entities.Param
    tags: list[Any]  # mlflow.entities.RunTag

    @property
    def size(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)


def batches(
    params: dict[str, str], tags: dict[str, str], points: Iterable[Point]
) -> Iterator[Batch]:
    """The fewest requests, in order: params and tags first, then points filling up."""
    from mlflow.entities import Metric, Param, RunTag

    budget = int(MAX_BATCH_BYTES * _HEADROOM)
    current, size = Batch([], [], []), 0
    for kind, limit, items in (
        (Param, MAX_BATCH_PARAMS, params.items()),
        (RunTag, MAX_BATCH_TAGS, tags.items()),
    ):
        target = current.params if kind is Param else current.tags
        for key, value in items:
            cost = _PAIR_BYTES + _json_len(key) + _json_len(value)
            full = current.size >= MAX_BATCH_ENTRIES or size + cost > budget
            if full or len(target) >= limit:
                yield current
                current, size = Batch([], [], []), 0
                target = current.params if kind is Param else current.tags
            target.append(kind(key, value))
            size += cost
    key_cost: dict[str, int] = {}
    for key, value, timestamp, step in points:
        cost = key_cost.get(key)
        if cost is None:
            cost = key_cost[key] = _METRIC_BYTES + _json_len(key)
        if current.size >= MAX_BATCH_ENTRIES or size + cost > budget:
            yield current
            current, size = Batch([], [], []), 0
        current.metrics.append(Metric(key, value, timestamp, step))
        size += cost
    if current.size:
        yield current


def _json_len(text: str) -> int:
    return len(json.dumps(text))  # as sent: non-ASCII characters escaped
