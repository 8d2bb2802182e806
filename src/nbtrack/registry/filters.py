"""MLflow's filter and order_by grammar for registered models and model versions.

Clauses joined by AND: ``name = 'churn'``, ``name LIKE 'churn%'``, ``run_id IN ('a', 'b')``,
``tags.validation = 'passed'``, ``version_number >= 3``, ``current_stage = 'Production'``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from nbtrack.errors import InvalidFilterError

Row = dict[str, Any]

_CLAUSE = re.compile(
    r"""\s*(?P<key>`[^`]+`|[\w.]+?(?:\.`[^`]+`)?)\s*
        (?P<op>!=|>=|<=|=|<|>|(?:NOT\s+)?I?LIKE\b|(?:NOT\s+)?IN\b)\s*
        (?P<value>'(?:[^']|'')*'|"(?:[^"]|"")*"|\([^)]*\)|-?\d+)\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_AND = re.compile(r"AND\b", re.IGNORECASE)
_COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Attribute keys, with the row field each reads.
VERSION_KEYS = {
    "name": "name",
    "run_id": "run_id",
    "source_path": "source",
    "version_number": "version",
    "current_stage": "current_stage",
}
MODEL_KEYS = {"name": "name"}


def compile_filter(text: str | None, keys: dict[str, str]) -> Callable[[Row], bool]:
    """A predicate over registry rows (each with a ``tags`` dict).

    Raises
    ------
    InvalidFilterError
        Naming the part of the filter that does not parse or the unknown key.
    """
    if text is None or not text.strip():
        return lambda row: True
    tests = []
    position = 0
    while True:
        match = _CLAUSE.match(text, position)
        if match is None:
            raise InvalidFilterError(
                f"Invalid filter {text!r} at position {position}: expected KEY OP VALUE, e.g. "
                f"name = 'churn' (keys: {', '.join(keys)}, tags.KEY)."
            )
        tests.append(_clause(match, keys, text))
        position = match.end()
        if position == len(text):
            break
        joined = _AND.match(text, position)
        if joined is None:
            raise InvalidFilterError(
                f"Invalid filter {text!r} at position {position}: clauses are joined by AND."
            )
        position = joined.end()
    return lambda row: all(test(row) for test in tests)


def _clause(match: re.Match[str], keys: dict[str, str], text: str) -> Callable[[Row], bool]:
    key = match["key"].replace("`", "")
    op = " ".join(match["op"].upper().split())
    value = match["value"]
    if key.startswith(("tags.", "tag.")):
        tag = key.split(".", 1)[1]
        getter: Callable[[Row], Any] = lambda row: row.get("tags", {}).get(tag)  # noqa: E731
    elif key in keys:
        field = keys[key]
        getter = lambda row: row.get(field)  # noqa: E731
    else:
        raise InvalidFilterError(
            f"Invalid filter {text!r}: unknown key {key!r}; use {', '.join(keys)} or tags.KEY."
        )
    return _test(getter, op, _literal(value, op, text))


def _literal(value: str, op: str, text: str) -> Any:
    if op.endswith("IN"):
        if not value.startswith("("):
            raise InvalidFilterError(f"Invalid filter {text!r}: IN needs a list like ('a', 'b').")
        items = re.findall(r"'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\"", value)
        return frozenset(single or double for single, double in items)
    if value[0] in "'\"":
        return value[1:-1].replace(value[0] * 2, value[0])
    return int(value)


def _test(getter: Callable[[Row], Any], op: str, value: Any) -> Callable[[Row], bool]:
    if op in ("IN", "NOT IN"):
        inside = op == "IN"
        return lambda row: (getter(row) is not None) and ((str(getter(row)) in value) == inside)
    if op.endswith("LIKE"):
        regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value)
        flags = re.DOTALL | (re.IGNORECASE if "ILIKE" in op else 0)
        matcher = re.compile(regex, flags).fullmatch
        negate = op.startswith("NOT")
        return lambda row: (
            (v := getter(row)) is not None and ((matcher(str(v)) is not None) != negate)
        )
    compare = _COMPARE[op]

    def test(row: Row) -> bool:
        found = getter(row)
        if found is None:
            return False
        if isinstance(value, int) and not isinstance(found, int):
            return False
        return compare(found if isinstance(value, int) else str(found), value)

    return test


def compile_order_by(
    order_by: Sequence[str] | None, keys: dict[str, str], default: Sequence[str]
) -> Callable[[list[Row]], list[Row]]:
    """A sorter for clauses like ``version_number DESC`` (stable, applied last to first)."""
    clauses = list(order_by or []) + list(default)
    known = {**keys, "creation_timestamp": "creation_timestamp"}
    known["last_updated_timestamp"] = "last_updated_timestamp"
    passes = []
    for clause in clauses:
        words = clause.split()
        if not words or len(words) > 2 or words[0] not in known:
            raise InvalidFilterError(
                f"Invalid order_by clause {clause!r}: use KEY [ASC|DESC] with KEY one of "
                f"{', '.join(known)}."
            )
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise InvalidFilterError(f"Invalid order_by clause {clause!r}: ASC or DESC.")
        passes.append((known[words[0]], direction == "DESC"))

    def sort(rows: list[Row]) -> list[Row]:
        for field, descending in reversed(passes):
            rows = sorted(rows, key=lambda row: row.get(field), reverse=descending)
        return rows

    return sort
