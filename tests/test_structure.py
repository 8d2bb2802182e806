"""The code's shape: no module reaches into another module's private names, and the
layering contract (``lint-imports``, as ``make lint`` runs it) holds."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "nbtrack"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_uses(path: Path, own: str | None = None) -> list[str]:
    """``from nbtrack.x import _name`` and ``x._name`` where ``x`` is an nbtrack module
    imported by this file, other than the file's own module (``own``, by default the one
    its place under ``src`` names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = own or _module_name(path)
    modules: dict[str, str] = {}  # local name -> nbtrack module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nbtrack"):
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and node.module != own:
                    found.append(f"{node.module}.{alias.name}")
                elif not alias.name[0].isupper():
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("nbtrack") and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and modules[node.value.id] != own
        ):
            found.append(f"{modules[node.value.id]}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    offenders = {
        str(path.relative_to(SRC)): uses
        for path in sorted(PACKAGE.rglob("*.py"))
        if (uses := _private_uses(path))
    }
    assert offenders == {}


def test_the_private_name_check_sees_both_forms(tmp_path: Path) -> None:
    # Written outside src: a sample there would fail the check above when a worker running
    # in parallel walks the package meanwhile.
    sample = tmp_path / "sample_for_test.py"
    text = "from nbtrack.tracking import fluent\nfrom nbtrack.search import _parse\nfluent._x\n"
    sample.write_text(text)
    found = _private_uses(sample, "nbtrack.widgets.sample_for_test")
    assert found == ["nbtrack.search._parse", "nbtrack.tracking.fluent._x"]
    assert _private_uses(sample, "nbtrack.search") == ["nbtrack.tracking.fluent._x"]


def test_the_import_contract_holds() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    if not linter.exists():
        pytest.fail("lint-imports is missing: install the dev extras (pip install -e '.[dev]')")
    result = subprocess.run(
        [str(linter)], cwd=SRC.parent, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:]
