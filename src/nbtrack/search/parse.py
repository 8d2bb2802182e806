"""Parsing MLflow filters and order_by clauses into clauses, against one search's grammar."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple, NoReturn

from nbtrack.errors import InvalidFilterError
from nbtrack.search.grammars import (
    ATTRIBUTES,
    INTEGER,
    LIST_OPS,
    METRICS,
    NULL_OPS,
    NUMERIC_OPS,
    STRING_OPS,
    Attribute,
    Grammar,
    Row,
)

_EMPTY: Mapping[str, Any] = {}
_OP_WORDS = frozenset({"LIKE", "ILIKE", "RLIKE", "REGEXP", "IN"})
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


class Identifier(NamedTuple):
    """What a clause compares: a metric, param or tag key, or an attribute."""

    kind: str  # METRICS, PARAMS, TAGS or ATTRIBUTES
    key: str  # the metric/param/tag key, or the attribute's canonical name
    text: str  # as written, for messages
    pos: int
    attribute: Attribute | None = None  # for ATTRIBUTES

    def value_in(self, row: Row) -> Any:
        """The value this identifier names in ``row`` (a metric's latest value); None if absent."""
        if self.attribute is not None:
            return self.attribute.get(row)
        found = (row.get(self.kind) or _EMPTY).get(self.key)
        return found[0] if found is not None and self.kind == METRICS else found


class Clause(NamedTuple):
    ident: Identifier
    op: str
    value: Any  # float for metrics, int/float or str for attributes, frozenset for IN


class Cursor:
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
        token = _LEXEME.match(self.text, pos)
        raise InvalidFilterError(
            f"{self.title} at column {pos + 1}: {message}\n  {shown}\n  {' ' * pos}^",
            text=self.text,
            span=(pos, token.end() if token else pos),
        )


# --- identifiers -----------------------------------------------------------------------------


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "`\"'":
        return token[1:-1]
    return token


def _parse_ident(cur: Cursor, grammar: Grammar, order: bool) -> Identifier:
    start = cur.pos
    head = _take_name(cur, _WORD)
    if head is None:
        cur.fail(f"expected an identifier such as {_example(grammar)}, got {cur.lexeme()}")
    bare = not cur.peek(".")
    if bare:
        # MLflow reads a name without a dot as an attribute, e.g. status = 'FINISHED'.
        kind, key_pos, key = ATTRIBUTES, start, _unquote(head)
        if key in grammar.types or key in grammar.refused_types:
            cur.fail(f"'{key}' needs a key: write {key}.<key>", start)
    else:
        cur.pos += 1
        kind = _identifier_type(cur, grammar, _unquote(head), start, order)
        key_pos = cur.pos
        key = _parse_key(cur, head)
    if kind != ATTRIBUTES:
        return Identifier(kind, key, cur.text[start : cur.pos], start)
    attribute = _attribute(cur, grammar, key, key_pos, order, bare)
    return Identifier(kind, attribute.name, cur.text[start : cur.pos], start, attribute)


def _example(grammar: Grammar) -> str:
    return "metrics.acc" if METRICS in grammar.types.values() else "name"


def _identifier_type(cur: Cursor, grammar: Grammar, name: str, pos: int, order: bool) -> str:
    if name in grammar.refused_types:
        cur.fail(grammar.refused_types[name], pos)
    if name not in grammar.types:
        cur.fail(f"unknown identifier type '{name}'; use {grammar.type_names()} (lower case)", pos)
    kind = grammar.types[name]
    if order and kind not in grammar.order_kinds:
        cur.fail(
            f"{grammar.subject} cannot be ordered by {kind}; order by "
            f"{grammar.attribute_names(order=True)}",
            pos,
        )
    return kind


def _take_name(cur: Cursor, pattern: re.Pattern[str]) -> str | None:
    """A word, or a quoted name (backticks, or double quotes if ``pattern`` allows)."""
    quote = cur.text[cur.pos : cur.pos + 1]
    if quote == "`" or (quote == '"' and pattern is _DOTTED):
        token = cur.take(_BACKTICK if quote == "`" else _DQUOTE)
        if token is None:
            cur.fail(f"unterminated name: this {quote} is never closed")
        return token
    return cur.take(pattern)


def _parse_key(cur: Cursor, head: str) -> str:
    pos = cur.pos
    token = _take_name(cur, _DOTTED)
    if not token or not _unquote(token):
        cur.fail(f"missing key after '{head}.'", pos)
    return _unquote(token)


def _attribute(
    cur: Cursor, grammar: Grammar, name: str, pos: int, order: bool, bare: bool
) -> Attribute:
    known = grammar.order_attributes if order else grammar.attributes
    if name not in known:
        # A bare name may have been meant as a key of another kind: say how to write that.
        keyed = grammar.keyed(name, order) if bare else ""
        hint = f" (or write {keyed})" if keyed else ""
        cur.fail(
            f"unknown attribute '{name}'; valid attributes are "
            f"{grammar.attribute_names(order)}{hint}",
            pos,
        )
    return known[name]


# --- comparators and values ---------------------------------------------------------------------


def _subject(ident: Identifier) -> str:
    return f"attribute {ident.key}" if ident.kind == ATTRIBUTES else ident.kind


def _is_numeric(ident: Identifier) -> bool:
    return ident.kind == METRICS or (ident.attribute is not None and ident.attribute.numeric)


def _allowed_ops(ident: Identifier, grammar: Grammar) -> tuple[str, ...]:
    if ident.attribute is not None:
        return ident.attribute.ops
    if ident.kind == METRICS:
        return NUMERIC_OPS
    return STRING_OPS + NULL_OPS * (ident.kind in grammar.null_kinds)


def _parse_comparator(cur: Cursor, ident: Identifier) -> str:
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
    hint = "" if ident.kind == ATTRIBUTES else " (quote keys holding spaces or symbols: `my-key`)"
    cur.fail(f"expected a comparator after {ident.text}, got {cur.lexeme()}{hint}")


def _parse_two_word_op(cur: Cursor, first: str, pos: int) -> str:
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


def _check_comparator(cur: Cursor, grammar: Grammar, ident: Identifier, op: str, pos: int) -> None:
    allowed = _allowed_ops(ident, grammar)
    if op in allowed:
        return
    if op in LIST_OPS:
        cur.fail(f"{op} works only on {grammar.list_attributes()}, not on {_subject(ident)}", pos)
    if op in NULL_OPS and grammar.null_kinds:
        kinds = " and ".join(grammar.null_kinds)
        cur.fail(f"{op} works only on {kinds}, not on {_subject(ident)}", pos)
    cur.fail(
        f"comparator '{op}' does not apply to {_subject(ident)}; use one of {', '.join(allowed)}",
        pos,
    )


def _read_string(cur: Cursor) -> str | None:
    """The text inside a quoted string at the cursor, or None if no quote is there."""
    quote = cur.text[cur.pos : cur.pos + 1]
    if quote not in ("'", '"'):
        return None
    token = cur.take(_SQUOTE if quote == "'" else _DQUOTE)
    if token is None:
        cur.fail(f"unterminated string: this {quote} is never closed")
    return token[1:-1]


def _parse_value(cur: Cursor, ident: Identifier, op: str) -> Any:
    if op in NULL_OPS:
        return None
    cur.skip_ws()
    if cur.at_end() or cur.peek_word() in ("AND", "OR"):
        cur.fail(f"missing value after {op}")
    if op in LIST_OPS:
        return _parse_list(cur)
    if _is_numeric(ident):
        return _parse_number(cur, ident)
    return _parse_string(cur, ident)


def _parse_number(cur: Cursor, ident: Identifier) -> float | int:
    pos = cur.pos
    attribute = ident.attribute
    if attribute is not None and attribute.type == INTEGER:
        return _parse_integer(cur, ident, attribute)
    number = cur.take(_NUMBER)
    if number is not None:
        # Attributes keep integers exact (ms timestamps); metrics compare as floats.
        exact = attribute is not None and _INTEGER.fullmatch(number)
        return int(number) if exact else float(number)
    message = f"{_subject(ident)} {'compare' if ident.kind == METRICS else 'compares'} to numbers"
    if _read_string(cur) is None:
        cur.fail(f"{message}, got {cur.lexeme()}", pos)
    cur.fail(f"{message}, got the string {cur.text[pos : cur.pos]}", pos)


def _parse_integer(cur: Cursor, ident: Identifier, attribute: Attribute) -> int:
    pos = cur.pos
    number = cur.take(_NUMBER)
    text = _read_string(cur) if number is None and attribute.quoted else None
    found = number if number is not None else text
    if found is not None and _INTEGER.fullmatch(found.strip()):
        return int(found)
    message = f"{_subject(ident)} compares to integers"
    if found is None and _read_string(cur) is not None:
        cur.fail(f"{message}, got the string {cur.text[pos : cur.pos]}", pos)
    shown = cur.text[pos : cur.pos] if found is not None else cur.lexeme()
    cur.fail(f"{message}, got {shown}", pos)


def _parse_string(cur: Cursor, ident: Identifier) -> str:
    pos = cur.pos
    text = _read_string(cur)
    if text is not None:
        return text
    verb = "compares" if ident.kind == ATTRIBUTES else "compare"
    message = f"{_subject(ident)} {verb} to quoted strings, got"
    number = cur.take(_NUMBER)
    if number is not None:
        cur.fail(f"{message} the number {number}; write '{number}'", pos)
    cur.fail(f"{message} {cur.lexeme()}", pos)


def _parse_list(cur: Cursor) -> frozenset[str]:
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


# --- filters ------------------------------------------------------------------------------------


def _parse_clause(cur: Cursor, grammar: Grammar) -> Clause:
    ident = _parse_ident(cur, grammar, order=False)
    cur.skip_ws()
    op_pos = cur.pos
    op = _parse_comparator(cur, ident)
    _check_comparator(cur, grammar, ident, op, op_pos)
    return Clause(ident, op, _parse_value(cur, ident, op))


def _check_clause_start(cur: Cursor, and_pos: int | None) -> None:
    word = cur.peek_word()
    if cur.at_end():
        cur.fail("empty clause after AND", and_pos)
    if word == "AND":
        cur.fail("empty clause before AND")
    if word == "OR":
        cur.fail(_OR_MESSAGE)
    if cur.peek("("):
        cur.fail("parentheses are not supported; join clauses with AND")


def parse_filter(text: str, grammar: Grammar) -> list[Clause]:
    """The clauses of a non-blank filter, each type-checked against ``grammar``.

    Raises
    ------
    InvalidFilterError
        Giving the column and echoing the filter with a caret under the offending token.
    """
    cur = Cursor(text, "Invalid filter")
    clauses: list[Clause] = []
    and_pos = None
    while True:
        cur.skip_ws()
        _check_clause_start(cur, and_pos)
        clauses.append(_parse_clause(cur, grammar))
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


# --- order_by -----------------------------------------------------------------------------------


def parse_order_clause(clause: str, grammar: Grammar) -> tuple[Identifier, bool]:
    """One ``order_by`` clause: what it orders by, and whether ascending."""
    cur = Cursor(clause, f"Invalid order_by clause {clause!r}")
    cur.skip_ws()
    if cur.at_end():
        example = "metrics.acc DESC" if METRICS in grammar.order_kinds else "name DESC"
        cur.fail(f"empty clause; expected e.g. '{example}'")
    ident = _parse_ident(cur, grammar, order=True)
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


def parse_order_by(order_by: tuple[str, ...], grammar: Grammar) -> list[tuple[Identifier, bool]]:
    """Every clause, refusing a field ordered twice (as MLflow does, aliases included)."""
    parsed, seen = [], {}
    for clause in order_by:
        ident, ascending = parse_order_clause(clause, grammar)
        field = (ident.kind, ident.key)
        if field in seen:
            Cursor(clause, f"Invalid order_by clause {clause!r}").fail(
                f"{ident.kind}.{ident.key} is already ordered by {seen[field]!r}", ident.pos
            )
        seen[field] = clause
        parsed.append((ident, ascending))
    return parsed
