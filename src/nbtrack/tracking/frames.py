"""Search results as a pandas DataFrame with MLflow's columns (pandas is imported here only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from nbtrack.store.query import RunHits

INFO_COLUMNS = ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")
_NAN = float("nan")
_EMPTY: dict[str, Any] = {}


def runs_dataframe(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: info columns, then ``metrics.*``, ``params.*``, ``tags.*``.

    Missing metrics are NaN and missing params and tags None, as in MLflow; times are
    UTC datetimes. Within each group columns are sorted by key.
    """
    data: dict[str, Any] = {name: [r.get(name) for r in rows] for name in INFO_COLUMNS}
    for name in ("start_time", "end_time"):
        data[name] = pd.to_datetime(pd.Series(data[name], dtype="float64"), unit="ms", utc=True)
    metrics, params, tags = _columns(rows)
    for group, columns in (("metrics", metrics), ("params", params), ("tags", tags)):
        for key in sorted(columns):
            data[f"{group}.{key}"] = columns[key]
    return pd.DataFrame(data)


def hits_dataframe(hits: RunHits) -> pd.DataFrame:
    """:func:`runs_dataframe` of a search's hits, built from the store's columns."""
    data: dict[str, Any] = {name: hits.field(name) for name in INFO_COLUMNS}
    for name in ("start_time", "end_time"):
        data[name] = pd.to_datetime(pd.Series(hits.numbers(name)), unit="ms", utc=True)
    for key in sorted(hits.keys("metrics")):
        data[f"metrics.{key}"] = hits.metric(key)
    for group in ("params", "tags"):
        for key in sorted(hits.keys(group)):
            data[f"{group}.{key}"] = hits.entry(group, key)
    return pd.DataFrame(data)


def _columns(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, list], ...]:
    """Metric, param and tag columns, filled in one pass over each row's own keys."""
    count = len(rows)
    metrics: dict[str, list] = {}
    for index, row in enumerate(rows):
        for key, point in row.get("metrics", _EMPTY).items():
            column = metrics.get(key)
            if column is None:
                column = metrics[key] = [_NAN] * count
            column[index] = point[0]
    return metrics, _text_columns(rows, "params"), _text_columns(rows, "tags")


def _text_columns(rows: Sequence[dict[str, Any]], group: str) -> dict[str, list]:
    count = len(rows)
    columns: dict[str, list] = {}
    for index, row in enumerate(rows):
        for key, value in row.get(group, _EMPTY).items():
            column = columns.get(key)
            if column is None:
                column = columns[key] = [None] * count
            column[index] = value
    return columns
