"""MLflow finds nbtrack's plugin by its entry points (pyproject.toml), which an install
writes into nbtrack's metadata. A checkout whose editable install predates them gets the
same entry points from a small generated distribution on ``sys.path`` and ``PYTHONPATH``
(so kernels and scripts the tests start find them too), read from pyproject.toml.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import shutil
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NAME = "nbtrack_checkout_entry_points"


def ensure_entry_points() -> None:
    """Make pyproject's entry points visible to MLflow (call before MLflow is imported)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    installed = {
        (group, ep.name, ep.value)
        for group in declared
        for ep in importlib.metadata.entry_points(group=group)
    }
    wanted = {(g, n, v) for g, points in declared.items() for n, v in points.items()}
    if wanted <= installed:
        return
    folder = Path(tempfile.mkdtemp(prefix="nbtrack-entry-points-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    info = folder / f"{NAME}-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {NAME}\nVersion: 0\n")
    lines = []
    for group, points in declared.items():
        lines += [f"[{group}]", *(f"{name} = {value}" for name, value in points.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines))
    sys.path.append(str(folder))
    paths = [*filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)), str(folder)]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    importlib.invalidate_caches()
