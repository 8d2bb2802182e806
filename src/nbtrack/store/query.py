"""Search over the runs table's columns: MLflow's filter and order_by, with no dict per run.

The grammar and the meaning of each clause come from nbtrack.search. A clause on a
param, a tag or a string attribute is decided once per distinct value, by the clause's
own row predicate applied to a row holding just that value; metrics and numeric
attributes are compared as arrays, exactly as the predicates compare them one by one.
tests/test_query.py checks that both ways find the same runs in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from nbtrack import search as grammar
from nbtrack.store.columns import METRICS, PARAMS, TAGS, RunColumns, Templated, Values

ATTRIBUTES = "attributes"
RUN_NAME_TAG = "mlflow.runName"
VIEWS = ("active", "deleted", "all")
_NUMERIC_ATTRIBUTES = ("start_time", "end_time")
_PRESENT, _NAN, _MISSING = 0, 1, 2  # how order_by ranks a row's value


class RunHits:
    """Runs a search found, in order: row numbers into a :class:`RunColumns`."""

    def __init__(self, columns: RunColumns, rows: np.ndarray) -> None:
        self.columns = columns
        self.index = rows

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, part: slice) -> list[dict[str, Any]]:
        """A slice of the hits as row dicts, so a page builds only its own rows."""
        if not isinstance(part, slice) or part.step not in (None, 1):
            raise TypeError("RunHits take a slice with no step: hits[start:stop].")
        return self.rows(part.start or 0, part.stop)

    def rows(self, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        """The hits from ``start`` to ``stop`` as row dicts (new ones)."""
        chosen = self.index[start:stop]
        if len(chosen) > len(self.columns) // 4:  # many: build them all in one pass
            everything = self.columns.rows()
            return [everything[i] for i in chosen.tolist()]
        return self.columns.rows_at(chosen)

    def run_ids(self) -> list[str]:
        return self.columns.id_objects()[self.index].tolist()

    def templated(self, name: str) -> Templated | None:
        """The field if it is ``prefix + run id + suffix`` wherever a row has it (see
        columns.Templated: ``prefix``, ``suffix``, ``present`` of every row), else None."""
        column = self.columns.fields.get(name)
        return column if isinstance(column, Templated) else None

    def keys(self, kind: str) -> list[str]:
        """The params, tags or metrics keys (``kind``) that any hit has, in first-use order."""
        hit = np.zeros(len(self.columns), bool)
        hit[self.index] = True
        part = self.columns.sparse[kind]
        return [key for key, arrays in part.keys.items() if hit[arrays[0]].any()]

    def field(self, name: str) -> np.ndarray:
        """A top-level field of every hit (None where a row lacks it), as an object array."""
        templated = self.templated(name)
        if templated is not None:  # made from the ids of the hits alone
            present = templated.present[self.index]
            ids = self.columns.id_objects()[self.index[present]]
            if not (templated.prefix or templated.suffix):
                if present.all():
                    return ids
                made = ids
            else:
                made = [f"{templated.prefix}{i}{templated.suffix}" for i in ids.tolist()]
            out = np.full(len(self.index), None, dtype=object)
            out[present] = made
            return out
        codes, values = self.coded_field(name)
        return values.objects()[codes]

    def coded_field(self, name: str) -> tuple[np.ndarray, Values]:
        """A top-level field of every hit as codes (-1: none) into its distinct values."""
        column = self.columns.field(name)
        if column is None:
            return np.full(len(self.index), -1, np.int32), Values([])
        return column.codes[self.index], column.values

    def coded_entry(self, kind: str, key: str) -> tuple[np.ndarray, Values]:
        """A param or tag of every hit as codes (-1: none) into its distinct values."""
        part = self.columns.sparse[kind]
        arrays = part.keys.get(key)
        at, found = _locate(arrays, self.index, len(self.columns))
        codes = np.full(len(self.index), -1, np.int32)
        if found is not None:
            codes[found] = arrays[1][at[found]]
        return codes, part.values

    def numbers(self, name: str) -> np.ndarray:
        """A numeric field of every hit as floats (NaN where absent or None)."""
        column = self.columns.field(name)
        if column is None:
            return np.full(len(self.index), np.nan)
        return column.values.floats()[column.codes[self.index]]

    def metric(self, key: str) -> np.ndarray:
        """The latest value of a metric for every hit (NaN where a run lacks it)."""
        arrays = self.columns.sparse[METRICS].keys.get(key)
        at, found = _locate(arrays, self.index, len(self.columns))
        out = np.full(len(self.index), np.nan)
        if found is not None:
            out[found] = arrays[1][at[found]]
        return out

    def entry(self, kind: str, key: str) -> np.ndarray:
        """A param or tag of every hit (None where a run lacks it), as an object array."""
        codes, values = self.coded_entry(kind, key)
        return values.objects()[codes]

    def ranks(self, kind: str, key: str, sort_key: Callable[[Any], Any]) -> np.ndarray:
        """Per hit, the rank of ``sort_key(value)`` among the hits' values of a field,
        param or tag (``kind`` "attributes", "params" or "tags"; a missing value is
        None): NaN where ``sort_key`` gives None. Equal keys share a rank; ``sort_key``
        is called once per distinct value."""
        if kind == ATTRIBUTES:
            codes, values = self.coded_field(key)
        else:
            codes, values = self.coded_entry(kind, key)
        used, inverse = np.unique(codes, return_inverse=True)
        items = values.items
        keyed = [sort_key(items[c] if c >= 0 else None) for c in used.tolist()]
        return _ranks(keyed)[inverse.reshape(-1)]

    def sorted(self, keys: np.ndarray, descending: bool) -> RunHits:
        """The hits ordered by ``keys`` (floats, one per hit; NaN last), stably."""
        missing = np.isnan(keys)
        value = np.where(missing, 0.0, -keys if descending else keys)
        order = np.lexsort((np.arange(len(keys)), value, missing))
        return RunHits(self.columns, self.index[order])


def search(
    columns: RunColumns,
    experiment_ids: Collection[str] | None,
    view: str,
    filter_string: str | None,
    order_by: Sequence[str] | None,
    max_results: int | None,
) -> RunHits:
    """What nbtrack.search.search does over the rows of these experiments and view
    (``active``, ``deleted`` or ``all``), on columns."""
    clauses, terms = grammar.plan(filter_string, order_by, max_results)
    mask = _view_mask(columns, view)
    if experiment_ids is not None:
        wanted = set(experiment_ids)
        mask &= field_mask(columns, "experiment_id", wanted.__contains__, False)
    for clause in clauses:
        if not mask.any():
            break
        mask &= clause_mask(columns, clause)
    rows = _default_order(columns, np.flatnonzero(mask))
    for kind, key, ascending in reversed(terms):
        missing, value = _order_values(columns, rows, kind, key)
        rows = _stable_pass(rows, missing, value, ascending)
    if max_results is not None:
        rows = rows[:max_results]
    return RunHits(columns, rows)


def of_experiments(columns: RunColumns, experiment_ids: Collection[str] | None) -> RunHits:
    """Every run of these experiments (None: all), any lifecycle stage, in table order."""
    if experiment_ids is None:
        return RunHits(columns, np.arange(len(columns)))
    wanted = set(experiment_ids)
    return RunHits(
        columns, np.flatnonzero(field_mask(columns, "experiment_id", wanted.__contains__, False))
    )


# -- filtering --------------------------------------------------------------------------------


def _view_mask(columns: RunColumns, view: str) -> np.ndarray:
    if view == "all":
        return np.ones(len(columns), bool)
    wanted = view == "active"
    in_view = lambda stage: (stage == "active") == wanted  # noqa: E731
    return field_mask(columns, "lifecycle_stage", in_view, wanted)


def field_mask(
    columns: RunColumns, name: str, test: Callable[[Any], Any], absent: bool
) -> np.ndarray:
    """``test(value)`` of a top-level field per row, decided once per distinct value;
    ``absent`` for rows without the field."""
    column = columns.field(name)
    if column is None:
        return np.full(len(columns), absent)
    items = column.values.items
    return _per_value(
        column.codes, len(items), lambda code: test(items[code]) if code >= 0 else absent
    )


def clause_mask(columns: RunColumns, clause: grammar.FilterClause) -> np.ndarray:
    """Which rows match one filter clause."""
    kind, key = clause.kind, clause.key
    if kind == METRICS:
        return _metric_mask(columns, clause)
    if kind in (PARAMS, TAGS):
        return _entry_mask(columns, kind, key, clause.matches)
    if key == "run_name":
        return _run_name_mask(columns, clause.matches)
    if key in _NUMERIC_ATTRIBUTES:
        return _numeric_mask(columns, clause)
    if key == "run_id" and clause.op in ("=", "IN"):
        return _run_id_mask(columns, clause)
    absent = bool(clause.matches({}))
    return field_mask(columns, key, lambda v: clause.matches({key: v}), absent)


def _metric_mask(columns: RunColumns, clause: grammar.FilterClause) -> np.ndarray:
    mask = np.zeros(len(columns), bool)
    arrays = columns.sparse[METRICS].keys.get(clause.key)
    if arrays is None:
        return mask  # a run without the metric matches no metric clause
    values = arrays[1]
    if abs(clause.value) >= grammar.MAX_FLOAT:
        values = np.clip(values, -grammar.MAX_FLOAT, grammar.MAX_FLOAT)  # NaN stays NaN
    with np.errstate(invalid="ignore"):
        mask[arrays[0]] = grammar.comparator(clause.op)(clause.value, values)
    return mask


def _entry_mask(columns: RunColumns, kind: str, key: str, matches: Callable) -> np.ndarray:
    mask = np.full(len(columns), bool(matches({})))
    part = columns.sparse[kind]
    arrays = part.keys.get(key)
    if arrays is not None:
        items = part.values.items
        mask[arrays[0]] = _per_value(
            arrays[1], len(items), lambda code: matches({kind: {key: items[code]}})
        )
    return mask


def _run_name_mask(columns: RunColumns, matches: Callable) -> np.ndarray:
    # Filters read the run name from the mlflow.runName tag, else the run_name field.
    by_field = field_mask(columns, "run_name", lambda v: matches({"run_name": v}), matches({}))
    part = columns.sparse[TAGS]
    arrays = part.keys.get(RUN_NAME_TAG)
    if arrays is not None:
        items = part.values.items
        by_field[arrays[0]] = _per_value(
            arrays[1], len(items), lambda code: matches({TAGS: {RUN_NAME_TAG: items[code]}})
        )
    return by_field


def _numeric_mask(columns: RunColumns, clause: grammar.FilterClause) -> np.ndarray:
    column = columns.field(clause.key)
    if column is None:
        return np.zeros(len(columns), bool)
    numbers = column.values.floats()
    exact = np.abs(numbers[:-1][np.isfinite(numbers[:-1])]) < 2.0**53
    if not (exact.all() and abs(clause.value) < 2.0**53):  # beyond float precision
        items = column.values.items
        return _per_value(
            column.codes, len(items), lambda c: c >= 0 and clause.matches({clause.key: items[c]})
        )
    with np.errstate(invalid="ignore"):
        hit = grammar.comparator(clause.op)(clause.value, numbers) & ~np.isnan(numbers)
    return hit[column.codes]


def _run_id_mask(columns: RunColumns, clause: grammar.FilterClause) -> np.ndarray:
    mask = np.zeros(len(columns), bool)
    wanted = clause.value if clause.op == "IN" else (clause.value,)
    column = columns.fields.get("run_id")
    for run_id in wanted:
        row = columns.index.get(run_id)
        if row is not None and column is not None and column.value(row, columns.ids) == run_id:
            mask[row] = True
    return mask


def _per_value(codes: np.ndarray, size: int, decide: Callable[[int], Any]) -> np.ndarray:
    """``decide(code)`` for every entry of ``codes`` (each in -1..size-1), called once
    per distinct code."""
    if size <= 4 * len(codes):  # a table over every code is the cheaper way
        table = np.fromiter((bool(decide(c)) for c in range(-1, size)), bool, size + 1)
        return table[codes + 1]
    distinct, inverse = np.unique(codes, return_inverse=True)
    decided = np.fromiter((bool(decide(c)) for c in distinct.tolist()), bool, len(distinct))
    return decided[inverse.reshape(-1)]


def id_prefix_mask(columns: RunColumns, prefix: str) -> np.ndarray:
    """Rows whose id starts with ``prefix``."""
    return np.fromiter((i.startswith(prefix) for i in columns.ids), bool, len(columns))


def newest(columns: RunColumns, mask: np.ndarray) -> int:
    """The row of ``mask`` that started last (a row without a start time counts as 0)."""
    rows = np.flatnonzero(mask)
    start = RunHits(columns, rows).numbers("start_time")
    return int(rows[int(np.argmax(np.where(np.isnan(start), 0.0, start)))])


def counts(columns: RunColumns, name: str, rows: np.ndarray) -> dict[Any, int]:
    """How many of ``rows`` hold each value of a top-level field."""
    column = columns.field(name)
    if column is None or not len(rows):
        return {}
    tally = np.bincount(column.codes[rows] + 1, minlength=len(column.values.items) + 1)
    items = column.values.items
    found: dict[Any, int] = {}
    for code in np.flatnonzero(tally[1:]).tolist():
        found[items[code]] = found.get(items[code], 0) + int(tally[code + 1])
    return found


# -- ordering -----------------------------------------------------------------------------------


def _default_order(columns: RunColumns, rows: np.ndarray) -> np.ndarray:
    """MLflow's order: start_time descending, then run_id (rows lacking either last)."""
    missing, start = _order_values(columns, rows, ATTRIBUTES, "start_time")
    order = np.lexsort((-start, missing))
    rows, missing, start = rows[order], missing[order], start[order]
    # Ties on start_time (runs started in the same millisecond) go by run_id.
    tied = np.flatnonzero((missing[1:] == missing[:-1]) & (start[1:] == start[:-1]))
    if len(tied):
        rows = _order_ties(columns, rows, tied)
    return rows


def _order_ties(columns: RunColumns, rows: np.ndarray, tied: np.ndarray) -> np.ndarray:
    """Sort each run of equal start times by run_id (those lacking one last), with numpy
    comparing the ids as strings, as Python does (by code point)."""
    rows = rows.copy()
    member = np.zeros(len(rows), bool)
    member[tied] = member[tied + 1] = True
    positions = np.flatnonzero(member)
    group = np.cumsum(~np.isin(positions - 1, tied))  # a new group where no tie links back
    names = RunHits(columns, rows[positions]).field("run_id")
    missing = names == None  # noqa: E711 - elementwise
    if missing.any():
        names = np.where(missing, "", names)
    order = np.lexsort((names.astype(str), missing, group))
    rows[positions] = rows[positions][order]
    return rows


def _order_values(
    columns: RunColumns, rows: np.ndarray, kind: str, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (how it ranks: present, NaN or missing; a float that orders the
    present ones), for one order_by term."""
    hits = RunHits(columns, rows)
    if kind == METRICS:
        values = np.clip(hits.metric(key), -grammar.MAX_FLOAT, grammar.MAX_FLOAT)
        has = _locate(columns.sparse[METRICS].keys.get(key), rows, len(columns))[1]
        state = np.full(len(rows), _MISSING, np.int8)
        if has is not None:
            state[has] = np.where(np.isnan(values[has]), _NAN, _PRESENT)
        return state, np.where(state == _PRESENT, values, 0.0)
    if kind == ATTRIBUTES and key in _NUMERIC_ATTRIBUTES:
        values = hits.numbers(key)
        if not (np.abs(values[~np.isnan(values)]) < 2.0**53).all():
            values = hits.ranks(kind, key, _identity)
    elif kind == ATTRIBUTES and key == "run_name":
        names = hits.field("run_name")  # orders by the field, else the tag
        tags = hits.entry(TAGS, RUN_NAME_TAG)
        values = _rank_values(np.where(names == None, tags, names), _identity)  # noqa: E711
    else:
        values = hits.ranks(kind, key, _identity)
    missing = np.isnan(values)
    return np.where(missing, _MISSING, _PRESENT).astype(np.int8), np.where(missing, 0.0, values)


def _stable_pass(
    rows: np.ndarray, state: np.ndarray, value: np.ndarray, ascending: bool
) -> np.ndarray:
    """Sort by one term, keeping the current order among equals: values in order,
    then NaN, then missing, in either direction."""
    order = np.lexsort((np.arange(len(rows)), value if ascending else -value, state))
    return rows[order]


def _rank_values(values: np.ndarray, sort_key: Callable[[Any], Any]) -> np.ndarray:
    return _ranks([None if v is None else sort_key(v) for v in values.tolist()])


def _ranks(keys: list) -> np.ndarray:
    """The rank of each key among the distinct ones (NaN for None)."""
    rank = {key: float(i) for i, key in enumerate(sorted({k for k in keys if k is not None}))}
    return np.array([np.nan if k is None else rank[k] for k in keys], dtype=float)


def _identity(value: Any) -> Any:
    return value


# -- helpers -------------------------------------------------------------------------------------


def _locate(
    arrays: tuple[np.ndarray, ...] | None, rows: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Where each of ``rows`` (of a table of ``n``) is in a sparse column's rows, and
    which of them are there."""
    if arrays is None or not len(arrays[0]):
        return np.zeros(len(rows), np.intp), None
    present = arrays[0]
    if 8 * len(rows) < n:  # few rows: a binary search each
        at = np.minimum(np.searchsorted(present, rows), len(present) - 1)
        return at, np.flatnonzero(present[at] == rows)
    position = np.full(n, -1, np.intp)
    position[present] = np.arange(len(present))
    at = position[rows]
    return at, np.flatnonzero(at >= 0)
