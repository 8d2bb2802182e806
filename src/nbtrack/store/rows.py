"""The shapes stored in the catalog and the one rule for changing them: apply a patch.

A *row* summarizes one run (or experiment) for search and display. A *patch* is a
partial row: the catalog's change log holds patches, journals are turned into patches,
and a row is the fold of its patches. Folding is order-insensitive for metrics (the
latest point wins by step, then time, then value, as in MLflow) and last-writer-wins
for everything else, so two processes patching one row never lose each other's fields.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

from nbtrack.store.journal import decode_float, encode_float

# Latest metric point as stored: [value, step, timestamp_ms].
LatestMetric = list


class RunRow(TypedDict, total=False):
    """A run's catalog row: what journals' records fold into (records.py's ``to_patch``)."""

    run_id: str
    experiment_id: str
    run_name: str
    status: str  # RUNNING | FINISHED | FAILED | KILLED | SCHEDULED
    start_time: int  # ms since the epoch, as MLflow
    end_time: int | None
    lifecycle_stage: str  # active | deleted
    user_id: str
    artifact_uri: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, LatestMetric]
    process: dict[str, Any]  # host, pid, started: who is writing a RUNNING run
    cell: dict[str, Any]  # notebook, cell_id, execution_count (the source stays in the journal)
    error: str  # "ExcType: message" of a FAILED run
    inputs: int  # how many dataset inputs the journal holds
    environment: str  # digest of the session's environment file
    stale: str  # why the notebook's state was stale when the run started
    remote: dict[str, Any]  # a run pulled from a tracking server (read-only): server, ...
    synced: dict[str, str]  # a local run pushed to tracking servers: server -> remote run id
    logged_models: bool  # the journal holds MLflow logged-model records (mlflow_plugin)


class Patch(TypedDict, total=False):
    set: dict[str, Any]
    params: dict[str, str]
    tags: dict[str, str]
    untag: list[str]
    metrics: dict[str, LatestMetric]


def apply_patch(row: dict[str, Any], patch: Patch) -> dict[str, Any]:
    """Fold ``patch`` into ``row`` in place and return it."""
    if "set" in patch:
        row.update(patch["set"])
    if "params" in patch:
        row.setdefault("params", {}).update(patch["params"])
    if "untag" in patch:
        tags = row.get("tags", {})
        for key in patch["untag"]:
            tags.pop(key, None)
    if "tags" in patch:
        row.setdefault("tags", {}).update(patch["tags"])
    if "metrics" in patch:
        merge_latest(row.setdefault("metrics", {}), patch["metrics"])
    return row


def merge_patch(pending: Patch, patch: Patch) -> None:
    """Combine two successive patches into ``pending`` so that applying it equals both."""
    if "set" in patch:
        pending.setdefault("set", {}).update(patch["set"])
    if "params" in patch:
        pending.setdefault("params", {}).update(patch["params"])
    if "untag" in patch:
        for key in patch["untag"]:
            pending.get("tags", {}).pop(key, None)
        pending.setdefault("untag", []).extend(patch["untag"])
    if "tags" in patch:
        if "untag" in pending:
            pending["untag"] = [k for k in pending["untag"] if k not in patch["tags"]]
        pending.setdefault("tags", {}).update(patch["tags"])
    if "metrics" in patch:
        merge_latest(pending.setdefault("metrics", {}), patch["metrics"])


def merge_latest(latest: dict[str, LatestMetric], new: dict[str, LatestMetric]) -> None:
    """Keep, per key, the point MLflow calls latest: max by (step, timestamp, value)."""
    for key, point in new.items():
        current = latest.get(key)
        if current is None or _newer(point, current):
            latest[key] = point


def _newer(a: LatestMetric, b: LatestMetric) -> bool:
    # MLflow ranks a NaN value as 0 when step and timestamp tie.
    return (a[1], a[2], nan_as_zero(a[0])) > (b[1], b[2], nan_as_zero(b[0]))


def nan_as_zero(value: float) -> float:
    return 0.0 if value != value else value


def to_disk(doc: dict[str, Any]) -> dict[str, Any]:
    """Spell non-finite metric values as strings; JSON cannot hold them."""
    metrics = doc.get("metrics")
    if metrics and not all(math.isfinite(p[0]) for p in metrics.values()):
        doc = {**doc, "metrics": {k: [encode_float(p[0]), *p[1:]] for k, p in metrics.items()}}
    return doc


def from_disk(doc: dict[str, Any]) -> dict[str, Any]:
    """Undo :func:`to_disk` in place."""
    metrics = doc.get("metrics")
    if metrics:
        for point in metrics.values():
            if type(point[0]) is str:
                point[0] = decode_float(point[0])
    return doc


def copy_value(value: Any) -> Any:
    """A copy of a JSON value, deep enough that changing it changes no stored row."""
    kind = type(value)
    if kind is dict:
        return {k: copy_value(v) for k, v in value.items()}
    if kind is list:
        return [copy_value(v) for v in value]
    return value


def patch_to_disk(patch: Patch) -> Patch:
    """:func:`to_disk` for a patch: its metrics, and those of the row fields it ``set``s
    (indexing a run from its journal sets a whole row, latest metrics included)."""
    patch = to_disk(patch)
    if "set" in patch and "metrics" in patch["set"]:
        patch = {**patch, "set": to_disk(patch["set"])}
    return patch


def patch_from_disk(patch: Patch) -> Patch:
    """Undo :func:`patch_to_disk` in place."""
    if "set" in patch:
        from_disk(patch["set"])
    return from_disk(patch)
