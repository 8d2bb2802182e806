"""order_by clauses compiled into sorters over in-memory rows, with MLflow's (sqlite) order."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nbtrack.errors import InvalidFilterError
from nbtrack.search.grammars import ATTRIBUTES, METRICS, Attribute, Grammar, Row
from nbtrack.search.parse import Identifier, parse_order_by
from nbtrack.search.predicates import MAX_FLOAT, clamp

Sorter = Callable[[Iterable[Row]], list[Row]]
_FIRST = operator.itemgetter(0)


def _metric_for_order(key: str) -> Callable[[Row], Any]:
    def value(row: Row) -> Any:
        point = (row.get(METRICS) or {}).get(key)
        if point is None:
            return None
        number = point[0]
        # +/-inf ties with +/-max, as in MLflow's store; NaN passes through unchanged.
        return number if -MAX_FLOAT <= number <= MAX_FLOAT else clamp(number)

    return value


def _order_value(ident: Identifier) -> Callable[[Row], Any]:
    if ident.kind == METRICS:
        return _metric_for_order(ident.key)
    if ident.attribute is not None:
        return ident.attribute.get
    return lambda row: (row.get(ident.kind) or {}).get(ident.key)


def _order_pass(rows: Iterable[Row], value_of: Callable[[Row], Any], ascending: bool) -> list:
    """Stable sort on one key: values in order, then NaN, then missing, in either
    direction, as MLflow's ``CASE WHEN is_nan THEN 1 WHEN value IS NULL THEN 2`` does."""
    present, nans, missing = [], [], []
    for row in rows:
        value = value_of(row)
        if value is None:
            missing.append(row)
        elif value != value:
            nans.append(row)
        else:
            present.append((value, row))
    present.sort(key=_FIRST, reverse=not ascending)  # reverse=True keeps ties stable
    return [row for _, row in present] + nans + missing


def _closing_passes(grammar: Grammar, explicit: list[Identifier]) -> list[tuple[Attribute, bool]]:
    """The grammar's default order when no clause is given, then each tie-breaker that
    no clause orders already (as MLflow's stores append them)."""
    named = [] if explicit else grammar.default_order
    passes = [(grammar.order_attributes[name], ascending) for name, ascending in named]
    ordered = {i.key for i in explicit if i.kind == ATTRIBUTES} | {a.name for a, _ in passes}
    for name, ascending in grammar.tie_breakers:
        attribute = grammar.order_attributes[name]
        if attribute.name not in ordered:
            passes.append((attribute, ascending))
            ordered.add(attribute.name)
    return passes


def _closing_order(rows: list[Row], passes: list[tuple[Attribute, bool]]) -> list[Row]:
    """Sort by ``passes`` (most significant first): plain sorts while every row holds
    every key, which is the common case and twice as fast."""
    ordered = list(rows)
    try:
        for attribute, ascending in reversed(passes):
            key = attribute.get if attribute.field is None else operator.itemgetter(attribute.field)
            ordered.sort(key=key, reverse=not ascending)
    except (KeyError, TypeError):  # a row lacks one of them: the slower, NULL-safe way
        ordered = rows
        for attribute, ascending in reversed(passes):
            ordered = _order_pass(ordered, attribute.get, ascending)
    return ordered


@functools.lru_cache(maxsize=256)
def _compile_order_by_cached(order_by: tuple[str, ...], grammar: Grammar) -> Sorter:
    parsed = parse_order_by(order_by, grammar)
    closing = _closing_passes(grammar, [ident for ident, _ in parsed])
    # Least significant key first: each stable pass keeps the earlier order on ties.
    passes = [(_order_value(ident), asc) for ident, asc in reversed(parsed)]

    def sort_rows(rows: Iterable[Row]) -> list[Row]:
        ordered = _closing_order(list(rows), closing)
        for value_of, ascending in passes:
            ordered = _order_pass(ordered, value_of, ascending)
        return ordered

    return sort_rows


def compile_order_by(order_by: Sequence[str] | None, grammar: Grammar) -> Sorter:
    """A sorter for MLflow order_by clauses in ``grammar``; see nbtrack.search."""
    if order_by is None:
        order_by = ()
    elif isinstance(order_by, str):
        raise InvalidFilterError(
            f"order_by must be a list of clauses, e.g. [{order_by!r}], not a string"
        )
    clauses = tuple(order_by)
    for clause in clauses:
        if not isinstance(clause, str):
            raise InvalidFilterError(
                f"order_by clauses must be strings, got {type(clause).__name__}"
            )
    return _compile_order_by_cached(clauses, grammar)
