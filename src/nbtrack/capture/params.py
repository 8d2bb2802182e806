"""Params from a cell's code: its literal top-level assignments, found by parsing its AST."""

from __future__ import annotations

import ast
import contextlib
from typing import Any

from nbtrack.capture.redact import redact

# Expressions whose variables live in a scope of their own.
_OWN_SCOPES = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def literal_assignments(source: str) -> dict[str, Any]:
    """``{name: value}`` for top-level ``name = <literal>`` statements in ``source``.

    Literals are what :func:`ast.literal_eval` accepts: numbers, strings, bools, None and
    lists, tuples, sets and dicts of them. ``a, b = 1, 2`` binds both names; names
    starting with ``_`` are private and skipped. Any later statement that rebinds a
    name otherwise (``a += 1``, ``a = f()``, ``for a in ...``, ``del a``, an import)
    drops it, since its value is no longer known from the code. Values under secret
    names (dict keys included) and credential-shaped strings are redacted
    (:func:`nbtrack.capture.redact.redact`).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: dict[str, Any] = {}
    for node in tree.body:
        literal = _literal_bindings(node)
        for name in _bound_names(node):
            found.pop(name, None)
        found.update(literal)
    return {name: redact(name, value) for name, value in found.items() if name[0] != "_"}


def _literal_bindings(node: ast.stmt) -> dict[str, Any]:
    bindings: dict[str, Any] = {}
    if isinstance(node, ast.Assign):
        for target in node.targets:
            _bind(target, node.value, bindings)
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        _bind(node.target, node.value, bindings)
    return bindings


def _bind(target: ast.expr, value: ast.expr, bindings: dict[str, Any]) -> None:
    if isinstance(target, ast.Name):
        with contextlib.suppress(ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            bindings[target.id] = ast.literal_eval(value)
    elif (
        isinstance(target, (ast.Tuple, ast.List))
        and isinstance(value, (ast.Tuple, ast.List))
        and len(target.elts) == len(value.elts)
    ):
        for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
            _bind(sub_target, sub_value, bindings)


def _bound_names(statement: ast.stmt) -> set[str]:
    """Every name a top-level statement binds or deletes in the module's scope."""
    names: set[str] = set()
    pending: list[ast.AST] = [statement]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)  # its body is a scope of its own
            pending.extend(node.decorator_list)
            continue
        if isinstance(node, _OWN_SCOPES):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))
    return names
