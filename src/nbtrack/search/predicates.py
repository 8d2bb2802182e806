"""Filters compiled into predicates over in-memory rows, with MLflow's (sqlite) semantics."""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from nbtrack.errors import InvalidFilterError
from nbtrack.search.grammars import ATTRIBUTES, METRICS, Attribute, Grammar, Row
from nbtrack.search.parse import Clause, parse_filter

Predicate = Callable[[Row], bool]

# Operators with their operands swapped, so partial(op, value)(x) means "x <op> value".
SWAPPED = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.gt,
    "<=": operator.ge,
    ">": operator.lt,
    ">=": operator.le,
}
# SQL has no infinity: MLflow's store saves +/-inf metrics as +/- the largest double.
MAX_FLOAT = 1.7976931348623157e308
_EMPTY: Mapping[str, Any] = {}

# Filtering is memory-bound on large catalogs, so each clause is one closure with its
# comparison inlined: a saved call per row is a tenth of the time.


def accept_all(row: Row) -> bool:
    return True


def clamp(value: float) -> float:
    if value > MAX_FLOAT:
        return MAX_FLOAT
    return -MAX_FLOAT if value < -MAX_FLOAT else value


def like_matcher(pattern: str, ignore_case: bool) -> Callable[[str], Any]:
    """``fullmatch`` of a LIKE (or ILIKE) pattern, as MLflow's sqlite store matches it.

    SQLite's LIKE (case-sensitive in MLflow's sessions) lets % and _ match newlines and
    has no escape character; ILIKE compiles to lower(x) LIKE lower(y), and SQLite's
    lower() folds ASCII only.
    """
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if ignore_case else 0)
    return re.compile(regex, flags).fullmatch


# ``p`` is the latest [value, step, timestamp] point. NaN needs no case: like MLflow's
# is_nan column makes it, it fails every comparator but "!=".
_METRIC_MATCHERS: dict[str, Callable[[str, float], Predicate]] = {
    "=": lambda k, v: (
        lambda row: (p := (row.get(METRICS) or _EMPTY).get(k)) is not None and p[0] == v
    ),
    "!=": lambda k, v: (
        lambda row: (p := (row.get(METRICS) or _EMPTY).get(k)) is not None and p[0] != v
    ),
    "<": lambda k, v: (
        lambda row: (p := (row.get(METRICS) or _EMPTY).get(k)) is not None and p[0] < v
    ),
    "<=": lambda k, v: (
        lambda row: (p := (row.get(METRICS) or _EMPTY).get(k)) is not None and p[0] <= v
    ),
    ">": lambda k, v: (
        lambda row: (p := (row.get(METRICS) or _EMPTY).get(k)) is not None and p[0] > v
    ),
    ">=": lambda k, v: (
        lambda row: (p := (row.get(METRICS) or _EMPTY).get(k)) is not None and p[0] >= v
    ),
}


def _metric_predicate(key: str, op: str, value: float) -> Predicate:
    if abs(value) < MAX_FLOAT:
        # Clamping +/-inf to +/-max cannot change a comparison with a smaller number.
        return _METRIC_MATCHERS[op](key, value)
    test = functools.partial(SWAPPED[op], value)

    def matches_clamped(row: Row) -> bool:
        point = (row.get(METRICS) or _EMPTY).get(key)
        return point is not None and test(clamp(point[0]))

    return matches_clamped


def _entry_predicate(field: str, key: str, op: str, value: Any) -> Predicate:
    """A param or tag clause; a missing key matches only IS NULL."""
    if op == "=":
        return lambda row: (row.get(field) or _EMPTY).get(key) == value
    if op == "!=":
        return lambda row: (v := (row.get(field) or _EMPTY).get(key)) is not None and v != value
    if op == "IS NULL":
        return lambda row: (row.get(field) or _EMPTY).get(key) is None
    if op == "IS NOT NULL":
        return lambda row: (row.get(field) or _EMPTY).get(key) is not None
    like = like_matcher(value, op == "ILIKE")
    return lambda row: (
        (v := (row.get(field) or _EMPTY).get(key)) is not None and (like(v) is not None)
    )


def _attribute_predicate(attribute: Attribute, op: str, value: Any) -> Predicate:
    """An attribute clause; a NULL attribute (end_time of a running run) matches nothing."""
    get = attribute.get
    if op == "=":
        return lambda row: get(row) == value
    if op in SWAPPED:
        test = functools.partial(SWAPPED[op], value)
    elif op in ("LIKE", "ILIKE"):
        like = like_matcher(value, op == "ILIKE")
        test = lambda found: like(found) is not None  # noqa: E731
    elif op == "IN":
        test = value.__contains__
    else:  # NOT IN
        test = lambda found: found not in value  # noqa: E731
    return lambda row: (found := get(row)) is not None and test(found)


def compile_clause(clause: Clause) -> Predicate:
    """One clause as a predicate over rows: what the clause means for any row."""
    ident, op, value = clause
    if ident.kind == METRICS:
        return _metric_predicate(ident.key, op, value)
    if ident.kind == ATTRIBUTES:
        return _attribute_predicate(ident.attribute, op, value)
    return _entry_predicate(ident.kind, ident.key, op, value)


def _conjoin(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda row: first(row) and second(row)
    return lambda row: all(predicate(row) for predicate in predicates)


@functools.lru_cache(maxsize=256)
def _compile_filter_cached(filter_string: str, grammar: Grammar) -> Predicate:
    return _conjoin([compile_clause(c) for c in parse_filter(filter_string, grammar)])


def compile_filter(filter_string: str | None, grammar: Grammar) -> Predicate:
    """A predicate over rows for an MLflow filter in ``grammar``; see nbtrack.search."""
    if filter_string is None:
        return accept_all
    if not isinstance(filter_string, str):
        raise InvalidFilterError(
            f"filter_string must be a string, got {type(filter_string).__name__}"
        )
    if not filter_string.strip():
        return accept_all
    return _compile_filter_cached(filter_string, grammar)
