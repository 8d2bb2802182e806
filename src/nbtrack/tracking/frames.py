"""Search results as a pandas DataFrame with MLflow's columns (pandas is imported here only)."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from nbtrack.store.columns import Values
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
    if not len(hits):
        return runs_dataframe([])
    data: dict[str, Any] = {}
    for name in INFO_COLUMNS:
        if name in ("start_time", "end_time"):
            data[name] = pd.to_datetime(pd.Series(hits.numbers(name)), unit="ms", utc=True)
        elif _string_dtype() is not None and _has_templated(hits, name):
            data[name] = _templated_text(hits, name)
        else:
            data[name] = _coded_text(*hits.coded_field(name))
    for key in sorted(hits.keys("metrics")):
        data[f"metrics.{key}"] = hits.metric(key)
    for group in ("params", "tags"):
        for key in sorted(hits.keys(group)):
            data[f"{group}.{key}"] = _coded_text(*hits.coded_entry(group, key))
    return pd.DataFrame(data)


# pandas 3 holds strings in Arrow and infers that from a column of str objects, one by
# one. Built from Arrow arrays here, the columns come out identical (tests compare them
# with runs_dataframe's), ten times faster. The Arrow forms of a store's distinct values
# and id-derived columns are kept while the same columns are searched again.
_ARROW_VALUES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ARROW_TEMPLATED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@functools.cache
def _string_dtype() -> Any:
    """The dtype pandas gives a column of strings, if Arrow holds it (pandas 3)."""
    dtype = pd.Series(["a", None]).dtype
    return dtype if getattr(dtype, "storage", None) == "pyarrow" else None


def _has_templated(hits: RunHits, name: str) -> bool:
    templated = hits.templated(name)
    return templated is not None and bool(templated.present[hits.index].any())


def _templated_text(hits: RunHits, name: str) -> Any:
    """A field made of ``prefix + run id + suffix``, taken from the whole column's Arrow
    form (built once per table)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns, templated = hits.columns, hits.templated(name)
    built = _ARROW_TEMPLATED.setdefault(columns, {})
    if name not in built:
        text = pa.array(columns.id_objects(), pa.large_string(), mask=~templated.present)
        if templated.prefix or templated.suffix:
            parts = [pa.scalar(p, pa.large_string()) for p in (templated.prefix, templated.suffix)]
            text = pc.binary_join_element_wise(
                parts[0], text, parts[1], pa.scalar("", pa.large_string())
            )
        built[name] = text
    return pd.array(built[name].take(pa.array(hits.index)), dtype=_string_dtype())


def _coded_text(codes: np.ndarray, values: Values) -> Any:
    """``values[code]`` per code (-1: missing) as a column; for strings, Arrow decodes
    the codes against the distinct strings instead of pandas reading every cell."""
    dtype = _string_dtype()
    if dtype is None or not values.all_text() or not (codes >= 0).any():
        return values.objects()[codes]  # (pandas keeps a column of only None as objects)
    import pyarrow as pa

    items = values.items
    known = _ARROW_VALUES.get(values)
    if known is None or len(known) != len(items):
        known = _ARROW_VALUES[values] = pa.array(items, pa.large_string())
    indices = pa.array(codes, pa.int32(), mask=codes < 0)
    decoded = pa.DictionaryArray.from_arrays(indices, known).dictionary_decode()
    return pd.array(decoded, dtype=dtype)


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
