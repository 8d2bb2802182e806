"""MLflow's search grammar (filters and order_by), evaluated over in-memory rows.

One parser reads every filter; a :class:`Grammar` says which keys each search allows:
:data:`RUNS` (the default), :data:`MODEL_VERSIONS`, :data:`REGISTERED_MODELS` and
:data:`EXPERIMENTS`::

    from nbtrack import search

    search.search(rows, "metrics.acc > 0.9 and params.model = 'rf'", ["metrics.acc DESC"])
    search.compile_filter("name LIKE 'churn%' and tags.team = 'risk'", search.REGISTERED_MODELS)

Errors are :class:`~nbtrack.errors.InvalidFilterError`, giving the column and echoing the
filter with a caret under the offending token.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from nbtrack.errors import InvalidParameterError
from nbtrack.search import ordering, parse, predicates
from nbtrack.search.grammars import (
    EXPERIMENTS,
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    RUNS,
    Attribute,
    Grammar,
    Row,
)
from nbtrack.search.ordering import Sorter
from nbtrack.search.parse import Clause, Identifier
from nbtrack.search.predicates import MAX_FLOAT, Predicate, like_matcher

__all__ = [
    "EXPERIMENTS",
    "MAX_FLOAT",
    "MODEL_VERSIONS",
    "REGISTERED_MODELS",
    "RUNS",
    "Attribute",
    "Clause",
    "FilterClause",
    "Grammar",
    "Identifier",
    "comparator",
    "compile_filter",
    "compile_order_by",
    "like_matcher",
    "order_clause",
    "parse_filter",
    "plan",
    "search",
]


def compile_filter(filter_string: str | None, grammar: Grammar = RUNS) -> Predicate:
    """Compile an MLflow search filter into a predicate over rows.

    Parameters
    ----------
    filter_string : str or None
        Clauses such as ``metrics.acc > 0.9 and params.model = 'rf'``, joined by AND.
        None, empty or blank accepts every row.
    grammar : Grammar
        The keys allowed: :data:`RUNS` (run catalog rows), :data:`MODEL_VERSIONS`,
        :data:`REGISTERED_MODELS` or :data:`EXPERIMENTS`.

    Returns
    -------
    Callable[[Mapping], bool]
        True for the rows that match every clause. Compiled predicates are cached.

    Raises
    ------
    InvalidFilterError
        If the filter does not parse or type-check; the message gives the column and
        echoes the filter with a caret under the offending token.
    """
    return predicates.compile_filter(filter_string, grammar)


def parse_filter(filter_string: str, grammar: Grammar = RUNS) -> list[Clause]:
    """The clauses of a filter, each with what it compares (``clause.ident``), its
    comparator and its value; ``ident.value_in(row)`` reads what a clause compares.

    Raises
    ------
    InvalidFilterError
        As :func:`compile_filter`.
    """
    compile_filter(filter_string, grammar)  # checks the type; cached, so parsed once
    return parse.parse_filter(filter_string, grammar) if filter_string.strip() else []


def compile_order_by(order_by: Sequence[str] | None, grammar: Grammar = RUNS) -> Sorter:
    """Compile MLflow order_by clauses into a function that sorts rows.

    Parameters
    ----------
    order_by : sequence of str or None
        Clauses such as ``"metrics.acc DESC"``, ``"params.lr"`` or
        ``"attributes.start_time ASC"``, most significant first.
    grammar : Grammar
        The keys allowed and the default order. For runs, None or empty keeps MLflow's
        default order: start_time descending, then run_id.

    Returns
    -------
    Callable[[Iterable[Mapping]], list[Mapping]]
        Returns a new sorted list. Missing keys sort last and NaN metrics just before
        them, in either direction; ties fall back to the grammar's tie-breakers.

    Raises
    ------
    InvalidFilterError
        If a clause does not parse or repeats a field; the message names the clause.
    """
    return ordering.compile_order_by(order_by, grammar)


def order_clause(clause: str, grammar: Grammar = RUNS) -> tuple[str, str, bool]:
    """One ``order_by`` clause as (kind, key, ascending), kind being ``metrics``,
    ``params``, ``tags`` or ``attributes`` (aliases resolved, backticks removed).

    Raises
    ------
    InvalidFilterError
        If the clause does not parse; the message points at where.
    """
    ident, ascending = parse.parse_order_clause(clause, grammar)
    return ident.kind, ident.key, ascending


def _check_max_results(max_results: Any) -> None:
    if max_results is None:
        return
    try:
        count = operator.index(max_results)
    except TypeError:
        count = 0
    if isinstance(max_results, bool) or count < 1:
        raise InvalidParameterError(
            f"Invalid value {max_results!r} for parameter 'max_results' supplied. "
            "It must be a positive integer"
        )


def search(
    rows: Iterable[Row],
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int | None = None,
    grammar: Grammar = RUNS,
) -> list[Row]:
    """Filter, order and truncate rows as MLflow's ``search_runs`` (or, with another
    ``grammar``, ``search_model_versions``...) does.

    Parameters
    ----------
    rows : iterable of Mapping
        Rows, already restricted to the wanted experiments and lifecycle stage.
    filter_string : str or None
        An MLflow search filter; see :func:`compile_filter`.
    order_by : sequence of str or None
        MLflow order_by clauses; see :func:`compile_order_by`.
    max_results : int or None
        Keep at most this many rows; None keeps all.
    grammar : Grammar
        The keys allowed; :data:`RUNS` by default.

    Returns
    -------
    list of Mapping
        The matching rows (the same objects), in order.

    Raises
    ------
    InvalidFilterError
        If the filter or an order_by clause is invalid.
    InvalidParameterError
        If ``max_results`` is not None or a positive integer.
    """
    _check_max_results(max_results)
    predicate = compile_filter(filter_string, grammar)
    sort_rows = compile_order_by(order_by, grammar)
    matched = rows if predicate is predicates.accept_all else filter(predicate, rows)
    ordered = sort_rows(matched)
    return ordered if max_results is None else ordered[:max_results]


# --- for evaluators over columns ----------------------------------------------------------


class FilterClause(NamedTuple):
    """One clause of a filter, for code that evaluates filters other than row by row
    (the store's columns): what it tests, and the clause's own row predicate, which is
    the meaning of the clause for any row, real or made up."""

    kind: str  # "metrics", "params", "tags" or "attributes"
    key: str  # the metric, param or tag key, or the attribute's canonical name
    op: str
    value: Any  # float for metrics, int/float or str for attributes, frozenset for IN
    matches: Predicate


@functools.lru_cache(maxsize=256)
def _filter_clauses(filter_string: str, grammar: Grammar) -> tuple[FilterClause, ...]:
    return tuple(
        FilterClause(c.ident.kind, c.ident.key, c.op, c.value, predicates.compile_clause(c))
        for c in parse.parse_filter(filter_string, grammar)
    )


def plan(
    filter_string: str | None,
    order_by: Sequence[str] | None,
    max_results: int | None = None,
    grammar: Grammar = RUNS,
) -> tuple[tuple[FilterClause, ...], list[tuple[str, str, bool]]]:
    """What :func:`search` would do with these arguments, for an evaluator over columns.

    Returns the filter's clauses (none: every row matches) and the order_by terms as
    (kind, key, ascending), most significant first; after them come the grammar's
    tie-breakers (for runs: start_time descending, then run_id), and rows without a
    value sort last. Metric comparisons clamp +/-inf to +/-``MAX_FLOAT`` when the
    compared number is that large, and metric ordering always does.

    Raises
    ------
    InvalidFilterError, InvalidParameterError
        Exactly as :func:`search` does.
    """
    _check_max_results(max_results)
    clauses: tuple[FilterClause, ...] = ()
    if compile_filter(filter_string, grammar) is not predicates.accept_all:
        clauses = _filter_clauses(filter_string, grammar)
    compile_order_by(order_by, grammar)  # refuses what search refuses
    parsed = parse.parse_order_by(tuple(order_by or ()), grammar)
    return clauses, [(ident.kind, ident.key, ascending) for ident, ascending in parsed]


def comparator(op: str) -> Callable[[Any, Any], Any]:
    """``comparator(op)(value, x)`` is ``x <op> value``; it works on numpy arrays too."""
    return predicates.SWAPPED[op]
