"""What one cell's code defines and reads at the notebook's top level (static AST analysis).

``analyze(code)`` returns the names a cell binds (with a *signature* when rebinding with the
same statement cannot change the value: an import of the same module, a ``def`` or
``class`` with the same body) and the names it reads from earlier cells. Reads inside
functions, lambdas and comprehensions count when the name is free there, since calling
the function reads it. A top-level ``x.attr = ...``, ``x[k] = ...``, ``x += ...`` or a
method call statement such as ``model.fit(X, y)`` both reads and redefines ``x``: it
changes the object other cells see.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
from typing import NamedTuple

# Names the kernel provides; reading them depends on no cell.
_PROVIDED = frozenset(dir(builtins)) | {
    "get_ipython",
    "display",
    "In",
    "Out",
    "exit",
    "quit",
    "_",
    "__",
    "___",
    "_ih",
    "_oh",
    "_dh",
    "_i",
    "_ii",
    "_iii",
}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class Analysis(NamedTuple):
    """A cell's top-level bindings (name -> signature or None) and the names it reads."""

    defs: dict[str, str | None]
    uses: frozenset[str]


EMPTY = Analysis({}, frozenset())


def analyze(code: str) -> Analysis:
    """Defs and uses of Python ``code`` (already free of IPython syntax); EMPTY if it
    does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return EMPTY
    defs: dict[str, str | None] = {}
    uses: set[str] = set()
    _scan(tree.body, defs, uses, _Source(code))
    return Analysis(defs, frozenset(uses - _PROVIDED))


class _Source:
    """The cell's text, for signatures of ``def``/``class`` statements (hashing their source
    is ten times cheaper than ``ast.dump``) and cheap checks for rare syntax."""

    def __init__(self, code: str) -> None:
        self.lines = code.splitlines(keepends=True)
        self.walrus = ":=" in code

    def signature(self, node: ast.stmt) -> str:
        start = node.decorator_list[0].lineno if node.decorator_list else node.lineno  # type: ignore[attr-defined]
        text = "".join(self.lines[start - 1 : node.end_lineno])
        return "def " + _digest(text)


def _scan(
    statements: list[ast.stmt], defs: dict[str, str | None], uses: set[str], source: _Source
) -> None:
    """Walk statements in execution order: a read counts as a use of an earlier cell unless
    this cell bound the name before it (``x = x + 1`` reads x; ``for i in r: i`` does not)."""

    def read(node: ast.AST | None) -> None:
        if node is not None:
            uses.update(n for n in _free_names(node) if n not in defs)
            if source.walrus:
                walrus = (n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr))
                defs.update(dict.fromkeys(walrus))

    def bind(node: ast.AST | None) -> None:
        if node is not None:
            defs.update(dict.fromkeys(_stored_names(node)))

    for statement in statements:
        if isinstance(statement, (ast.For, ast.AsyncFor)):
            read(statement.iter)
            bind(statement.target)
            _scan(statement.body + statement.orelse, defs, uses, source)
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            for item in statement.items:
                read(item.context_expr)
                bind(item.optional_vars)
            _scan(statement.body, defs, uses, source)
        elif isinstance(statement, (ast.If, ast.While)):
            read(statement.test)
            _scan(statement.body + statement.orelse, defs, uses, source)
        elif isinstance(statement, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            _scan(statement.body, defs, uses, source)
            for handler in statement.handlers:
                read(handler.type)
                if handler.name:
                    defs[handler.name] = None
                _scan(handler.body, defs, uses, source)
            _scan(statement.orelse + statement.finalbody, defs, uses, source)
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            read(statement)
            defs[statement.name] = source.signature(statement)
        else:
            read(statement)
            augmented = isinstance(statement, ast.AugAssign)
            if augmented and isinstance(statement.target, ast.Name):
                read(ast.Name(statement.target.id, ast.Load()))  # ``x += 1`` reads x
            defs.update(_bindings(statement))


def _bindings(statement: ast.stmt) -> dict[str, str | None]:
    if isinstance(statement, ast.Import):
        return {
            (a.asname or a.name).split(".")[0]: f"import {a.name} as {a.asname}"
            for a in statement.names
        }
    if isinstance(statement, ast.ImportFrom):
        module = "." * statement.level + (statement.module or "")
        return {
            (a.asname or a.name): f"from {module} import {a.name}"
            for a in statement.names
            if a.name != "*"
        }
    names = dict.fromkeys(_stored_names(statement))
    names.update(dict.fromkeys(_mutated_names(statement)))
    return names


def _stored_names(node: ast.AST) -> set[str]:
    """Names bound in the module scope by a statement (not inside functions)."""
    found: set[str] = set()
    pending: list[ast.AST] = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, _SCOPES):
            if current is not node and not isinstance(current, ast.Lambda):
                found.add(current.name)
            continue
        if isinstance(current, ast.Name) and isinstance(current.ctx, (ast.Store, ast.Del)):
            found.add(current.id)
        elif isinstance(current, (ast.Import, ast.ImportFrom)):
            found.update(_bindings(current))
        elif isinstance(current, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and current.name:
            found.add(current.name)
        elif isinstance(current, ast.MatchMapping) and current.rest:
            found.add(current.rest)
        if isinstance(current, _COMPREHENSIONS):
            # Only a walrus inside a comprehension binds outside it.
            found.update(n.target.id for n in ast.walk(current) if isinstance(n, ast.NamedExpr))
            continue
        pending.extend(ast.iter_child_nodes(current))
    return found


def _mutated_names(statement: ast.stmt) -> set[str]:
    """Objects a top-level statement changes in place: ``x.a = v``, ``x[k] = v``, ``del x[k]``,
    ``x.a += v`` and method-call statements like ``x.fit(...)``."""
    targets: list[ast.expr] = []
    if isinstance(statement, ast.Assign):
        targets = list(statement.targets)
    elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
        targets = [statement.target]
    elif isinstance(statement, ast.Delete):
        targets = list(statement.targets)
    elif (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Call)
        and isinstance(statement.value.func, ast.Attribute)
    ):
        targets = [statement.value.func.value]
    names = set()
    for target in targets:
        for element in target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]:
            root = _root_name(element)
            if root is not None and root is not element:
                names.add(root.id)
            elif root is not None and isinstance(statement, ast.Expr):
                names.add(root.id)  # ``model.fit(...)``: the receiver itself
    return names


def _root_name(node: ast.expr) -> ast.Name | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node if isinstance(node, ast.Name) else None


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _free_names(node: ast.AST) -> set[str]:
    """Names read under ``node`` that its own nested scopes do not bind."""
    found: set[str] = set()
    pending = [node]
    while pending:  # iterative, filling one set: this runs under every cell
        current = pending.pop()
        if isinstance(current, ast.Name):
            if isinstance(current.ctx, ast.Load):
                found.add(current.id)
        elif isinstance(current, _FUNCTIONS):
            found |= _function_free_names(current)
        elif isinstance(current, _COMPREHENSIONS):
            found |= _comprehension_free_names(current)
        else:
            pending.extend(ast.iter_child_nodes(current))
    return found


def _function_free_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    args = node.args
    outside: set[str] = set()  # defaults and decorators are evaluated in the enclosing scope
    for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
        outside |= _free_names(default)
    if not isinstance(node, ast.Lambda):
        for decorator in node.decorator_list:
            outside |= _free_names(decorator)
        for annotation in _annotations(node):
            outside |= _free_names(annotation)
    params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    body = node.body if isinstance(node.body, list) else [node.body]
    local = params | {n for s in body for n in _stored_names(s)}
    local -= {name for s in body if isinstance(s, ast.Global) for name in s.names}
    inner: set[str] = set()
    for statement in body:
        inner |= _free_names(statement)
    return outside | (inner - local)


def _annotations(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    args = node.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    found = [a.annotation for a in every if a is not None and a.annotation is not None]
    return found + ([node.returns] if node.returns is not None else [])


def _comprehension_free_names(node: ast.expr) -> set[str]:
    generators = node.generators  # type: ignore[attr-defined]
    # The first iterable is evaluated outside; every other part sees the loop targets.
    outside = _free_names(generators[0].iter)
    targets = {n.id for g in generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
    inner: set[str] = set()
    for index, generator in enumerate(generators):
        if index:
            inner |= _free_names(generator.iter)
        for condition in generator.ifs:
            inner |= _free_names(condition)
    elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]  # type: ignore[attr-defined]
    for element in elements:
        inner |= _free_names(element)
    return outside | (inner - targets)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]
