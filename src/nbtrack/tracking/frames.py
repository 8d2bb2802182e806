"""Search results as a pandas DataFrame with MLflow's columns (pandas is imported here only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

INFO_COLUMNS = ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")


def runs_dataframe(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: info columns, then ``metrics.*``, ``params.*``, ``tags.*``.

    Missing metrics are NaN and missing params and tags None, as in MLflow; times are
    UTC datetimes. Within each group columns are sorted by key.
    """
    data: dict[str, Any] = {name: [r.get(name) for r in rows] for name in INFO_COLUMNS}
    for name in ("start_time", "end_time"):
        data[name] = pd.to_datetime(pd.Series(data[name], dtype="float64"), unit="ms", utc=True)
    for group, missing in (("metrics", float("nan")), ("params", None), ("tags", None)):
        keys = sorted({key for r in rows for key in r.get(group, ())})
        for key in keys:
            if group == "metrics":
                column = [_latest(r, key) for r in rows]
            else:
                column = [r.get(group, {}).get(key, missing) for r in rows]
            data[f"{group}.{key}"] = column
    frame = pd.DataFrame(data)
    return frame


def _latest(row: dict[str, Any], key: str) -> float:
    point = row.get("metrics", {}).get(key)
    return point[0] if point is not None else float("nan")
