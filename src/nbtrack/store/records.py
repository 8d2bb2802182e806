"""The records a run's journal holds, and how each one changes the run's catalog row.

Every record is a dict with an ``op``:

=========  =================================================================
create     the run's first row: ids, name, times, status, user, system tags
params     ``params``: {key: value}, values are immutable once logged
tags       ``tags``: {key: value}
untag      ``key``: a tag removed
metrics    ``key`` and the columns ``step``, ``value``, ``time`` (ms) of a batch
artifact   ``path``, ``size``, ``sha256`` of a file under the run's artifacts
set        ``fields``: top-level row fields changed (status, end_time, lifecycle, ...)
cell       the notebook cell that made the run: source, execution_count, cell_id, notebook
traceback  ``text`` of the error that failed the run
=========  =================================================================
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from nbtrack.store.journal import decode_float, encode_floats
from nbtrack.store.rows import Patch, nan_as_zero

Point = tuple[str, float, int, float]  # key, value, step, timestamp in ms (a float until flushed)


def to_patch(record: dict[str, Any]) -> Patch | None:
    """The catalog patch a journal record implies, or None if the catalog ignores it."""
    op = record["op"]
    if op == "create":
        run = dict(record["run"])
        return {"set": run, "tags": run.pop("tags", {})}
    if op == "params":
        return {"params": record["params"]}
    if op == "tags":
        return {"tags": record["tags"]}
    if op == "untag":
        return {"untag": [record["key"]]}
    if op == "set":
        return {"set": record["fields"]}
    if op == "metrics":
        return {"metrics": {record["key"]: latest_point(record)}}
    if op == "cell":
        return {"set": {"cell": {k: v for k, v in record.items() if k not in ("op", "source")}}}
    return None


def metric_records(points: list[Point]) -> list[dict[str, Any]]:
    """Encode a batch of buffered points as one columnar record per metric key."""
    return [_metric_record(key, group) for key, group in _by_key(points).items()]


def latest_point(record: dict[str, Any]) -> list:
    """The point of a metrics record MLflow would call latest: max (step, time, value).

    As in MLflow, a NaN value ranks as 0 in that order.
    """
    columns = zip(record["step"], record["time"], metric_values(record), strict=True)
    if record.get("nonfinite"):
        step, time, value = max(columns, key=lambda p: (p[0], p[1], nan_as_zero(p[2])))
    else:
        step, time, value = max(columns)  # no NaN: plain tuple order, all in C
    return [value, step, time]


def metric_values(record: dict[str, Any]) -> list[float]:
    values = record["value"]
    if record.get("nonfinite"):
        return [decode_float(v) for v in values]
    return values


def _by_key(points: list[Point]) -> dict[str, list[Point]]:
    first = points[0][0]
    if all(p[0] == first for p in points):  # the usual batch: one metric in a loop
        return {first: points}
    groups: dict[str, list[Point]] = defaultdict(list)
    for point in points:
        groups[point[0]].append(point)
    return groups


def _metric_record(key: str, points: list[Point]) -> dict[str, Any]:
    _, values, steps, times = zip(*points, strict=True)
    record: dict[str, Any] = {"op": "metrics", "key": key, "step": steps}
    encoded = encode_floats(values)
    if encoded is None:
        record["value"] = values
    else:
        record["value"], record["nonfinite"] = encoded, True
    record["time"] = [int(t) for t in times]
    return record
