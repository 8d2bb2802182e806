"""Secret-looking names: auto-captured values under them are never stored."""

from __future__ import annotations

import ast
import re

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(r"token|password|passwd|secret|key|credential", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True for names like ``api_key``, ``HF_TOKEN``, ``db_password``, ``client_secret``."""
    return bool(_SECRET_NAME.search(name))


def redact_source(source: str) -> str:
    """``source`` with literal values bound to secret-looking names replaced.

    Covers ``api_key = "..."``, ``token: str = "..."``, ``login(password="...")`` and
    ``{"secret": "..."}``. A cell magic's first line (``%%track --param token=...``) loses
    its secret-looking ``name=value`` arguments and the Python below it is redacted as
    above; other code that does not parse (line magics) is redacted line by line.
    """
    if source.startswith("%%"):
        line, newline, body = source.partition("\n")
        return _ARGUMENT.sub(rf"\1{REDACTED}", line) + newline + redact_source(body)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return _LINE_ASSIGNMENT.sub(lambda m: f"{m.group(1)}{REDACTED!r}", source)
    spans = sorted(
        (_span(node, source) for node in _secret_literals(tree)), key=lambda s: s[0], reverse=True
    )
    data = source.encode()
    for start, end in spans:
        data = data[:start] + repr(REDACTED).encode() + data[end:]
    return data.decode()


_ARGUMENT = re.compile(rf"(\b\w*(?:{_SECRET_NAME.pattern})\w*=)\S+", re.IGNORECASE)
_LINE_ASSIGNMENT = re.compile(
    rf"^(\s*\w*(?:{_SECRET_NAME.pattern})\w*\s*(?::[^=\n]*)?=\s*)\S.*$",
    re.IGNORECASE | re.MULTILINE,
)


def _secret_literals(tree: ast.AST) -> list[ast.expr]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            pairs = [(node.target, node.value)]
        elif isinstance(node, ast.keyword) and node.arg:
            pairs = [(ast.Name(node.arg), node.value)]
        elif isinstance(node, ast.Dict):
            pairs = [(k, v) for k, v in zip(node.keys, node.values, strict=True) if k]
        else:
            continue
        for target, value in pairs:
            if _secret_target(target) and isinstance(value, ast.Constant):
                found.append(value)
    return found


def _secret_target(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return is_secret_name(node.id)
    if isinstance(node, ast.Attribute):
        return is_secret_name(node.attr)
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and (is_secret_name(node.value))
    )


def _span(node: ast.expr, source: str) -> tuple[int, int]:
    """Byte offsets of ``node`` in ``source`` (ast columns count UTF-8 bytes)."""
    lines = source.encode().splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    start = offsets[node.lineno - 1] + node.col_offset
    end = offsets[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
    return start, end
