"""Params from a cell's code: its literal top-level assignments, found by parsing its AST."""

from __future__ import annotations

import ast
from typing import Any

from nbtrack.capture.redact import redact


def literal_assignments(source: str) -> dict[str, Any]:
    """``{name: value}`` for top-level ``name = <literal>`` statements in ``source``.

    Literals are what :func:`ast.literal_eval` accepts: numbers, strings, bools, None and
    lists, tuples, sets and dicts of them. ``a, b = 1, 2`` binds both names; names
    starting with ``_`` are private and skipped; secret-looking names are redacted.
    A later assignment to a name wins, as it would when the cell runs.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                _bind(target, node.value, found)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            _bind(node.target, node.value, found)
    return {name: redact(name, value) for name, value in found.items()}


def _bind(target: ast.expr, value: ast.expr, found: dict[str, Any]) -> None:
    if isinstance(target, ast.Name):
        if not target.id.startswith("_"):
            try:
                found[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                found.pop(target.id, None)  # no longer a literal after this statement
    elif (
        isinstance(target, (ast.Tuple, ast.List))
        and isinstance(value, (ast.Tuple, ast.List))
        and len(target.elts) == len(value.elts)
    ):
        for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
            _bind(sub_target, sub_value, found)
