"""MLflow's run-search filter and order_by grammar, evaluated over in-memory catalog rows."""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn

from nbtrack.errors import InvalidFilterError, InvalidParameterError

__all__ = ["FilterClause", "compile_filter", "compile_order_by", "plan", "search"]

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]
Sorter = Callable[[Iterable[Row]], list[Row]]

# Identifier kinds; each is also the row field that holds that kind's values.
_METRIC, _PARAM, _TAG, _ATTR = "metrics", "params", "tags", "attributes"

# The spellings MLflow accepts before the dot. It matches them case-sensitively.
_TYPES = {
    "metric": _METRIC,
    "metrics": _METRIC,
    "parameter": _PARAM,
    "parameters": _PARAM,
    "param": _PARAM,
    "params": _PARAM,
    "tag": _TAG,
    "tags": _TAG,
    "attribute": _ATTR,
    "attributes": _ATTR,
    "attr": _ATTR,
    "run": _ATTR,
}
_DATASET_TYPES = frozenset({"dataset", "datasets"})
_STRING_ATTRS = frozenset({"artifact_uri", "run_id", "run_name", "status", "user_id"})
_NUMERIC_ATTRS = frozenset({"end_time", "start_time"})
_ATTR_NAMES = "artifact_uri, created, end_time, run_id, run_name, start_time, status, user_id"
# MLflow's aliases: order_by knows only "created"; filters also know "run name".
_ORDER_ALIASES = {"created": "start_time", "Created": "start_time"}
_FILTER_ALIASES = {
    **_ORDER_ALIASES,
    "run name": "run_name",
    "Run name": "run_name",
    "Run Name": "run_name",
}
_RUN_NAME_TAG = "mlflow.runName"

_NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
_NULL_OPS = ("IS NULL", "IS NOT NULL")
_LIST_OPS = ("IN", "NOT IN")
_OP_WORDS = frozenset({"LIKE", "ILIKE", "RLIKE", "REGEXP", "IN"})
# Operators with their operands swapped, so partial(op, value)(x) means "x <op> value".
_SWAPPED = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.gt,
    "<=": operator.ge,
    ">": operator.lt,
    ">=": operator.le,
}
# SQL has no infinity: MLflow's store saves +/-inf metrics as +/- the largest double.
_MAX_FLOAT = MAX_FLOAT = 1.7976931348623157e308
_EMPTY: Mapping[str, Any] = {}
_OR_MESSAGE = "OR is not supported (MLflow filters join clauses with AND only)"

_WS = re.compile(r"\s*")
_WORD = re.compile(r"\w+")
_DOTTED = re.compile(r"\w+(?:\.\w+)*")
_SYMBOL_OP = re.compile(r"[<>=~!]+")
# Quoting follows sqlparse, which MLflow parses with: '' and \' do not end a string,
# and (as in MLflow) the text between the quotes is used as is, without unescaping.
_BACKTICK = re.compile(r"`(?:``|[^`])*`")
_SQUOTE = re.compile(r"'(?:''|\\'|[^'])*'")
_DQUOTE = re.compile(r'"(?:""|\\"|[^"])*"')
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?[eE]-?\d+|\d+\.\d*|\.\d+|\d+)(?![\w.])")
_INTEGER = re.compile(r"-?\d+")
_LEXEME = re.compile(r"'[^']*'?|\"[^\"]*\"?|`[^`]*`?|[\w.]+|[<>=~!]+|\S")
# Tabs and newlines would shift the caret under the echoed filter.
_FLATTEN = str.maketrans("\t\n\r\f\v", "     ")


class _Ident(NamedTuple):
    kind: str  # _METRIC, _PARAM, _TAG or _ATTR
    key: str  # the metric/param/tag key, or the canonical attribute name
    text: str  # as written, for messages
    pos: int


class _Clause(NamedTuple):
    ident: _Ident
    op: str
    value: Any  # float for metrics, int/float or str for attributes, frozenset for IN


class _Cursor:
    """A position in the text being parsed; its errors point at the text."""

    __slots__ = ("pos", "text", "title")

    def __init__(self, text: str, title: str) -> None:
        self.text, self.title, self.pos = text, title, 0

    def skip_ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()

    def take(self, pattern: re.Pattern[str]) -> str | None:
        match = pattern.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group()

    def peek(self, literal: str) -> bool:
        return self.text.startswith(literal, self.pos)

    def peek_word(self) -> str:
        match = _WORD.match(self.text, self.pos)
        return match.group().upper() if match else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def lexeme(self, pos: int | None = None) -> str:
        """The token at ``pos``, quoted for an error message."""
        match = _LEXEME.match(self.text, self.pos if pos is None else pos)
        if match is None:
            return "the end of the text"
        token = match.group()
        token = token if len(token) <= 30 else token[:27] + "..."
        return token if token[0] in "'\"`" else f"'{token}'"

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        pos = self.pos if pos is None else pos
        shown = self.text.translate(_FLATTEN)
        raise InvalidFilterError(
            f"{self.title} at column {pos + 1}: {message}\n  {shown}\n  {' ' * pos}^"
        )


# --- parsing -------------------------------------------------------------------------


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "`\"'":
        return token[1:-1]
    return token


def _parse_ident(cur: _Cursor, aliases: Mapping[str, str]) -> _Ident:
    start = cur.pos
    head = _take_name(cur, _WORD)
    if head is None:
        cur.fail(f"expected an identifier such as metrics.acc, got {cur.lexeme()}")
    if cur.peek("."):
        cur.pos += 1
        kind = _identifier_type(cur, _unquote(head), start)
        key_pos = cur.pos
        key = _parse_key(cur, head)
    else:
        # MLflow reads a name without a dot as an attribute, e.g. status = 'FINISHED'.
        kind, key_pos, key = _ATTR, start, _unquote(head)
        if key in _TYPES or key in _DATASET_TYPES:
            cur.fail(f"'{key}' needs a key: write {key}.<key>", start)
    if kind == _ATTR:
        key = _attribute_name(cur, key, aliases, key_pos)
    return _Ident(kind, key, cur.text[start : cur.pos], start)


def _identifier_type(cur: _Cursor, name: str, pos: int) -> str:
    if name in _DATASET_TYPES:
        cur.fail("dataset filters are not supported", pos)
    if name not in _TYPES:
        cur.fail(
            f"unknown identifier type '{name}'; use metrics., params., tags. "
            "or attributes. (lower case)",
            pos,
        )
    return _TYPES[name]


def _take_name(cur: _Cursor, pattern: re.Pattern[str]) -> str | None:
    """A word, or a quoted name (backticks, or double quotes if ``pattern`` allows)."""
    quote = cur.text[cur.pos : cur.pos + 1]
    if quote == "`" or (quote == '"' and pattern is _DOTTED):
        token = cur.take(_BACKTICK if quote == "`" else _DQUOTE)
        if token is None:
            cur.fail(f"unterminated name: this {quote} is never closed")
        return token
    return cur.take(pattern)


def _parse_key(cur: _Cursor, head: str) -> str:
    pos = cur.pos
    token = _take_name(cur, _DOTTED)
    if not token or not _unquote(token):
        cur.fail(f"missing key after '{head}.'", pos)
    return _unquote(token)


def _attribute_name(cur: _Cursor, name: str, aliases: Mapping[str, str], pos: int) -> str:
    canonical = aliases.get(name, name)
    if canonical not in _STRING_ATTRS and canonical not in _NUMERIC_ATTRS:
        cur.fail(f"unknown attribute '{name}'; valid attributes are {_ATTR_NAMES}", pos)
    return canonical


def _subject(ident: _Ident) -> str:
    return f"attribute {ident.key}" if ident.kind == _ATTR else ident.kind


def _is_numeric(ident: _Ident) -> bool:
    return ident.kind == _METRIC or (ident.kind == _ATTR and ident.key in _NUMERIC_ATTRS)


def _allowed_ops(ident: _Ident) -> tuple[str, ...]:
    if _is_numeric(ident):
        return _NUMERIC_OPS
    if ident.kind == _ATTR:
        return _STRING_OPS + _LIST_OPS if ident.key == "run_id" else _STRING_OPS
    return _STRING_OPS + _NULL_OPS


def _parse_comparator(cur: _Cursor, ident: _Ident) -> str:
    cur.skip_ws()
    pos = cur.pos
    symbol = cur.take(_SYMBOL_OP)
    if symbol:
        return symbol
    word = cur.peek_word()
    if word in _OP_WORDS:
        cur.take(_WORD)
        return word
    if word in ("NOT", "IS"):
        return _parse_two_word_op(cur, word, pos)
    if cur.at_end():
        cur.fail(f"missing comparator after {ident.text}")
    hint = "" if ident.kind == _ATTR else " (quote keys holding spaces or symbols: `my-key`)"
    cur.fail(f"expected a comparator after {ident.text}, got {cur.lexeme()}{hint}")


def _parse_two_word_op(cur: _Cursor, first: str, pos: int) -> str:
    words = [first]
    expected = ("IN", "LIKE", "ILIKE", "RLIKE", "REGEXP") if first == "NOT" else ("NULL", "NOT")
    while True:
        cur.take(_WORD)
        cur.skip_ws()
        word = cur.peek_word()
        if word not in expected:
            hint = "NOT IN" if first == "NOT" else "IS NULL or IS NOT NULL"
            cur.fail(f"incomplete comparator; expected {hint}", pos)
        words.append(word)
        if word != "NOT":
            cur.take(_WORD)
            return " ".join(words)
        expected = ("NULL",)


def _check_comparator(cur: _Cursor, ident: _Ident, op: str, pos: int) -> None:
    if op in _LIST_OPS and (ident.kind, ident.key) != (_ATTR, "run_id"):
        cur.fail(f"{op} works only on attributes.run_id, not on {_subject(ident)}", pos)
    if op in _NULL_OPS and ident.kind not in (_PARAM, _TAG):
        cur.fail(f"{op} works only on params and tags, not on {_subject(ident)}", pos)
    allowed = _allowed_ops(ident)
    if op not in allowed:
        cur.fail(
            f"comparator '{op}' does not apply to {_subject(ident)}; "
            f"use one of {', '.join(allowed)}",
            pos,
        )


def _read_string(cur: _Cursor) -> str | None:
    """The text inside a quoted string at the cursor, or None if no quote is there."""
    quote = cur.text[cur.pos : cur.pos + 1]
    if quote not in ("'", '"'):
        return None
    token = cur.take(_SQUOTE if quote == "'" else _DQUOTE)
    if token is None:
        cur.fail(f"unterminated string: this {quote} is never closed")
    return token[1:-1]


def _parse_value(cur: _Cursor, ident: _Ident, op: str) -> Any:
    if op in _NULL_OPS:
        return None
    cur.skip_ws()
    if cur.at_end() or cur.peek_word() in ("AND", "OR"):
        cur.fail(f"missing value after {op}")
    if op in _LIST_OPS:
        return _parse_list(cur)
    if _is_numeric(ident):
        return _parse_number(cur, ident)
    return _parse_string(cur, ident)


def _parse_number(cur: _Cursor, ident: _Ident) -> float | int:
    pos = cur.pos
    number = cur.take(_NUMBER)
    if number is not None:
        # Attributes keep integers exact (ms timestamps); metrics compare as floats.
        exact = ident.kind == _ATTR and _INTEGER.fullmatch(number)
        return int(number) if exact else float(number)
    message = f"{_subject(ident)} {'compare' if ident.kind == _METRIC else 'compares'} to numbers"
    if _read_string(cur) is None:
        cur.fail(f"{message}, got {cur.lexeme()}", pos)
    cur.fail(f"{message}, got the string {cur.text[pos : cur.pos]}", pos)


def _parse_string(cur: _Cursor, ident: _Ident) -> str:
    pos = cur.pos
    text = _read_string(cur)
    if text is not None:
        return text
    verb = "compares" if ident.kind == _ATTR else "compare"
    message = f"{_subject(ident)} {verb} to quoted strings, got"
    number = cur.take(_NUMBER)
    if number is not None:
        cur.fail(f"{message} the number {number}; write '{number}'", pos)
    cur.fail(f"{message} {cur.lexeme()}", pos)


def _parse_list(cur: _Cursor) -> frozenset[str]:
    open_pos = cur.pos
    if not cur.peek("("):
        cur.fail("IN needs a parenthesized list of quoted strings, e.g. ('a', 'b')")
    cur.pos += 1
    items: list[str] = []
    while True:
        cur.skip_ws()
        if cur.peek(")"):
            if not items:
                cur.fail("the IN list is empty")
            cur.pos += 1
            return frozenset(items)
        if cur.at_end():
            cur.fail("the IN list is never closed", open_pos)
        item = _read_string(cur)
        if item is None:
            cur.fail(f"IN lists hold quoted strings, got {cur.lexeme()}")
        items.append(item)
        cur.skip_ws()
        if cur.peek(","):
            cur.pos += 1
        elif not cur.peek(")") and not cur.at_end():
            cur.fail(f"expected ',' or ')' in the IN list, got {cur.lexeme()}")


def _parse_clause(cur: _Cursor) -> _Clause:
    ident = _parse_ident(cur, _FILTER_ALIASES)
    cur.skip_ws()
    op_pos = cur.pos
    op = _parse_comparator(cur, ident)
    _check_comparator(cur, ident, op, op_pos)
    return _Clause(ident, op, _parse_value(cur, ident, op))


def _check_clause_start(cur: _Cursor, and_pos: int | None) -> None:
    word = cur.peek_word()
    if cur.at_end():
        cur.fail("empty clause after AND", and_pos)
    if word == "AND":
        cur.fail("empty clause before AND")
    if word == "OR":
        cur.fail(_OR_MESSAGE)
    if cur.peek("("):
        cur.fail("parentheses are not supported; join clauses with AND")


def _parse_filter(text: str) -> list[_Clause]:
    cur = _Cursor(text, "Invalid filter")
    clauses: list[_Clause] = []
    and_pos = None
    while True:
        cur.skip_ws()
        _check_clause_start(cur, and_pos)
        clauses.append(_parse_clause(cur))
        cur.skip_ws()
        if cur.at_end():
            return clauses
        and_pos = cur.pos
        word = cur.peek_word()
        if word == "OR":
            cur.fail(_OR_MESSAGE)
        if word != "AND":
            cur.fail(f"expected AND or the end of the filter, got {cur.lexeme()}")
        cur.take(_WORD)


# --- filter predicates ------------------------------------------------------------------
# Filtering is memory-bound on large catalogs, so each clause is one closure with its
# comparison inlined: a saved call per row is a tenth of the time.


def _accept_all(row: Row) -> bool:
    return True


def _clamp(value: float) -> float:
    if value > _MAX_FLOAT:
        return _MAX_FLOAT
    return -_MAX_FLOAT if value < -_MAX_FLOAT else value


# ``p`` is the latest [value, step, timestamp] point. NaN needs no case: like MLflow's
# is_nan column makes it, it fails every comparator but "!=".
_METRIC_MATCHERS: dict[str, Callable[[str, float], Predicate]] = {
    "=": lambda k, v: (
        lambda row: (p := (row.get(_METRIC) or _EMPTY).get(k)) is not None and p[0] == v
    ),
    "!=": lambda k, v: (
        lambda row: (p := (row.get(_METRIC) or _EMPTY).get(k)) is not None and p[0] != v
    ),
    "<": lambda k, v: (
        lambda row: (p := (row.get(_METRIC) or _EMPTY).get(k)) is not None and p[0] < v
    ),
    "<=": lambda k, v: (
        lambda row: (p := (row.get(_METRIC) or _EMPTY).get(k)) is not None and p[0] <= v
    ),
    ">": lambda k, v: (
        lambda row: (p := (row.get(_METRIC) or _EMPTY).get(k)) is not None and p[0] > v
    ),
    ">=": lambda k, v: (
        lambda row: (p := (row.get(_METRIC) or _EMPTY).get(k)) is not None and p[0] >= v
    ),
}


def _metric_predicate(key: str, op: str, value: float) -> Predicate:
    if abs(value) < _MAX_FLOAT:
        # Clamping +/-inf to +/-max cannot change a comparison with a smaller number.
        return _METRIC_MATCHERS[op](key, value)
    test = functools.partial(_SWAPPED[op], value)

    def matches_clamped(row: Row) -> bool:
        point = (row.get(_METRIC) or _EMPTY).get(key)
        return point is not None and test(_clamp(point[0]))

    return matches_clamped


def _entry_getter(field: str, key: str) -> Callable[[Row], Any]:
    return lambda row: (row.get(field) or _EMPTY).get(key)


def _run_name_for_filter(row: Row) -> Any:
    # MLflow filters run_name through the mlflow.runName tag, not the runs.name column.
    name = (row.get(_TAG) or _EMPTY).get(_RUN_NAME_TAG)
    return row.get("run_name") if name is None else name


def _run_name_for_order(row: Row) -> Any:
    # ... but orders by the runs.name column.
    name = row.get("run_name")
    return (row.get(_TAG) or _EMPTY).get(_RUN_NAME_TAG) if name is None else name


def _like_matcher(pattern: str, ignore_case: bool) -> Callable[[str], Any]:
    # SQLite's LIKE (case-sensitive in MLflow's sessions) lets % and _ match newlines;
    # ILIKE compiles to lower(x) LIKE lower(y), and SQLite's lower() folds ASCII only.
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if ignore_case else 0)
    return re.compile(regex, flags).fullmatch


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
    like = _like_matcher(value, op == "ILIKE")
    return lambda row: (
        (v := (row.get(field) or _EMPTY).get(key)) is not None and (like(v) is not None)
    )


def _attribute_predicate(name: str, op: str, value: Any) -> Predicate:
    """An attribute clause; a NULL attribute (end_time of a running run) matches nothing."""
    get = _run_name_for_filter if name == "run_name" else operator.methodcaller("get", name)
    if op == "=":
        return lambda row: get(row) == value
    if op in _SWAPPED:
        test = functools.partial(_SWAPPED[op], value)
    elif op in ("LIKE", "ILIKE"):
        like = _like_matcher(value, op == "ILIKE")
        test = lambda found: like(found) is not None  # noqa: E731
    elif op == "IN":
        test = value.__contains__
    else:  # NOT IN
        test = lambda found: found not in value  # noqa: E731
    return lambda row: (found := get(row)) is not None and test(found)


def _compile_clause(clause: _Clause) -> Predicate:
    ident, op, value = clause
    if ident.kind == _METRIC:
        return _metric_predicate(ident.key, op, value)
    if ident.kind == _ATTR:
        return _attribute_predicate(ident.key, op, value)
    return _entry_predicate(ident.kind, ident.key, op, value)


def _conjoin(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda row: first(row) and second(row)
    return lambda row: all(predicate(row) for predicate in predicates)


@functools.lru_cache(maxsize=256)
def _compile_filter_cached(filter_string: str) -> Predicate:
    return _conjoin([_compile_clause(clause) for clause in _parse_filter(filter_string)])


def compile_filter(filter_string: str | None) -> Predicate:
    """Compile an MLflow search filter into a predicate over run rows.

    Parameters
    ----------
    filter_string : str or None
        Clauses such as ``metrics.acc > 0.9 and params.model = 'rf'``, joined by AND.
        None, empty or blank accepts every row.

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
    if filter_string is None:
        return _accept_all
    if not isinstance(filter_string, str):
        raise InvalidFilterError(
            f"filter_string must be a string, got {type(filter_string).__name__}"
        )
    if not filter_string.strip():
        return _accept_all
    return _compile_filter_cached(filter_string)


# --- ordering ---------------------------------------------------------------------------


def _metric_for_order(key: str) -> Callable[[Row], Any]:
    def value(row: Row) -> Any:
        point = (row.get(_METRIC) or _EMPTY).get(key)
        if point is None:
            return None
        number = point[0]
        # +/-inf ties with +/-max, as in MLflow's store; NaN passes through unchanged.
        return number if -_MAX_FLOAT <= number <= _MAX_FLOAT else _clamp(number)

    return value


def _order_value(ident: _Ident) -> Callable[[Row], Any]:
    if ident.kind == _METRIC:
        return _metric_for_order(ident.key)
    if ident.kind != _ATTR:
        return _entry_getter(ident.kind, ident.key)
    if ident.key == "run_name":
        return _run_name_for_order
    return operator.methodcaller("get", ident.key)


_FIRST = operator.itemgetter(0)


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


def _default_order(rows: Iterable[Row]) -> list[Row]:
    """MLflow's tie-breakers: start_time DESC, then run_id."""
    rows = list(rows)
    try:
        rows.sort(key=operator.itemgetter("run_id"))
        rows.sort(key=operator.itemgetter("start_time"), reverse=True)
    except (KeyError, TypeError):  # a row lacks one of them: the slower, NULL-safe way
        rows = _order_pass(rows, operator.methodcaller("get", "run_id"), True)
        rows = _order_pass(rows, operator.methodcaller("get", "start_time"), False)
    return rows


def _parse_order_clause(clause: str) -> tuple[_Ident, bool]:
    cur = _Cursor(clause, f"Invalid order_by clause {clause!r}")
    cur.skip_ws()
    if cur.at_end():
        cur.fail("empty clause; expected e.g. 'metrics.acc DESC'")
    ident = _parse_ident(cur, _ORDER_ALIASES)
    cur.skip_ws()
    if cur.at_end():
        return ident, True
    word = cur.peek_word()
    if word not in ("ASC", "DESC"):
        cur.fail(f"expected ASC or DESC, got {cur.lexeme()}")
    cur.take(_WORD)
    cur.skip_ws()
    if not cur.at_end():
        cur.fail(f"unexpected {cur.lexeme()} after {word}")
    return ident, word == "ASC"


def order_clause(clause: str) -> tuple[str, str, bool]:
    """One ``order_by`` clause as (kind, key, ascending), kind being ``metrics``,
    ``params``, ``tags`` or ``attributes`` (aliases resolved, backticks removed).

    Raises
    ------
    InvalidFilterError
        If the clause does not parse; the message points at where.
    """
    ident, ascending = _parse_order_clause(clause)
    return ident.kind, ident.key, ascending


def _parse_order_by(order_by: tuple[str, ...]) -> list[tuple[_Ident, bool]]:
    parsed, seen = [], {}
    for clause in order_by:
        ident, ascending = _parse_order_clause(clause)
        field = (ident.kind, ident.key)
        if field in seen:
            # MLflow rejects repeated fields too, aliases included (created = start_time).
            _Cursor(clause, f"Invalid order_by clause {clause!r}").fail(
                f"{ident.kind}.{ident.key} is already ordered by {seen[field]!r}", ident.pos
            )
        seen[field] = clause
        parsed.append((ident, ascending))
    return parsed


@functools.lru_cache(maxsize=256)
def _compile_order_by_cached(order_by: tuple[str, ...]) -> Sorter:
    # Least significant key first: each stable pass keeps the earlier order on ties.
    # MLflow skips its start_time DESC tie-breaker when start_time is ordered already;
    # applying it anyway changes nothing, since an explicit start_time key ranks above.
    passes = [(_order_value(ident), asc) for ident, asc in reversed(_parse_order_by(order_by))]

    def sort_rows(rows: Iterable[Row]) -> list[Row]:
        ordered = _default_order(rows)
        for value_of, ascending in passes:
            ordered = _order_pass(ordered, value_of, ascending)
        return ordered

    return sort_rows


def compile_order_by(order_by: Sequence[str] | None) -> Sorter:
    """Compile MLflow order_by clauses into a function that sorts run rows.

    Parameters
    ----------
    order_by : sequence of str or None
        Clauses such as ``"metrics.acc DESC"``, ``"params.lr"`` or
        ``"attributes.start_time ASC"``, most significant first. None or empty keeps
        MLflow's default order: start_time descending, then run_id.

    Returns
    -------
    Callable[[Iterable[Mapping]], list[Mapping]]
        Returns a new sorted list. Missing keys sort last and NaN metrics just before
        them, in either direction; ties fall back to start_time DESC, then run_id.

    Raises
    ------
    InvalidFilterError
        If a clause does not parse or repeats a field; the message names the clause.
    """
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
    return _compile_order_by_cached(clauses)


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
def _filter_clauses(filter_string: str) -> tuple[FilterClause, ...]:
    return tuple(
        FilterClause(c.ident.kind, c.ident.key, c.op, c.value, _compile_clause(c))
        for c in _parse_filter(filter_string)
    )


def plan(
    filter_string: str | None,
    order_by: Sequence[str] | None,
    max_results: int | None = None,
) -> tuple[tuple[FilterClause, ...], list[tuple[str, str, bool]]]:
    """What :func:`search` would do with these arguments, for an evaluator over columns.

    Returns the filter's clauses (none: every row matches) and the order_by terms as
    (kind, key, ascending), most significant first; before them comes MLflow's default
    order (start_time descending, then run_id), and rows without a value sort last.
    Metric comparisons clamp +/-inf to +/-``MAX_FLOAT`` when the compared number is
    that large, and metric ordering always does.

    Raises
    ------
    InvalidFilterError, InvalidParameterError
        Exactly as :func:`search` does.
    """
    _check_max_results(max_results)
    clauses: tuple[FilterClause, ...] = ()
    if compile_filter(filter_string) is not _accept_all:
        clauses = _filter_clauses(filter_string)
    compile_order_by(order_by)
    terms = [(i.kind, i.key, asc) for i, asc in _parse_order_by(tuple(order_by or ()))]
    return clauses, terms


def comparator(op: str) -> Callable[[Any, Any], Any]:
    """``comparator(op)(value, x)`` is ``x <op> value``; it works on numpy arrays too."""
    return _SWAPPED[op]


# --- search -----------------------------------------------------------------------------


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
) -> list[Row]:
    """Filter, order and truncate run rows as MLflow's ``search_runs`` does.

    Parameters
    ----------
    rows : iterable of Mapping
        Catalog rows, already restricted to the wanted experiments and lifecycle stage.
    filter_string : str or None
        An MLflow search filter; see :func:`compile_filter`.
    order_by : sequence of str or None
        MLflow order_by clauses; see :func:`compile_order_by`.
    max_results : int or None
        Keep at most this many rows; None keeps all.

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
    predicate = compile_filter(filter_string)
    sort_rows = compile_order_by(order_by)
    matched = rows if predicate is _accept_all else filter(predicate, rows)
    ordered = sort_rows(matched)
    return ordered if max_results is None else ordered[:max_results]
