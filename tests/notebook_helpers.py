"""The project's notebooks run headless in real kernels, and their executed cells read.

Kernels inherit this process's environment, so every kernel a test starts goes through
:func:`prepare_kernel_environment` (conftest's ``kernel_env`` does it per test,
:func:`execute_notebook` once per notebook).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLEARED = (
    "NBTRACK_DIR",
    "NBTRACK_TRACKING_URI",
    "NBTRACK_RUN_ID",
    "NBTRACK_SECRET_NAMES",
    "NBTRACK_NOT_SECRET_NAMES",
    "JPY_SESSION_NAME",
    # MLflow's, which mlflow.set_experiment in this process may have set (MLFLOW_EXPERIMENT_ID)
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
)


def prepare_kernel_environment(patch: pytest.MonkeyPatch, **variables: str) -> None:
    """Clear the NBTRACK_* and MLflow's run variables (and the notebook path), put this
    checkout's ``src`` first on PYTHONPATH (no editable install needed), then set
    ``variables``."""
    for variable in CLEARED:
        patch.delenv(variable, raising=False)
    paths = [str(ROOT / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    patch.setenv("PYTHONPATH", os.pathsep.join(paths))
    for name, value in variables.items():
        patch.setenv(name, value)


def execute_notebook(
    notebook: Path, workdir: Path, env: dict[str, str] | None = None, **client_options: Any
) -> Any:
    """Copy ``notebook`` into ``workdir`` and run it there to the end in a fresh kernel
    (cwd ``workdir``); the executed notebook."""
    import nbformat  # here, not at the top: conftest imports this module for every run
    from nbclient import NotebookClient

    shutil.copy(notebook, workdir / notebook.name)
    nb = nbformat.read(workdir / notebook.name, as_version=4)
    with pytest.MonkeyPatch.context() as patch:
        prepare_kernel_environment(patch, **(env or {}))
        NotebookClient(
            nb,
            kernel_name="python3",
            timeout=600,
            resources={"metadata": {"path": str(workdir)}},
            **client_options,
        ).execute()
    return nb


def code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def cell_starting(nb: Any, prefix: str) -> Any:
    """The one code cell whose source starts with ``prefix``."""
    [cell] = [c for c in code_cells(nb) if c.source.startswith(prefix)]
    return cell


def outputs(cell: Any, output_type: str) -> list[dict[str, Any]]:
    return [o for o in cell.outputs if o["output_type"] == output_type]


def scratch_store(nb: Any) -> Path:
    """The store a notebook's ``%track store --scratch`` switched to (it prints its URI)."""
    for cell in code_cells(nb):
        for output in outputs(cell, "stream"):
            found = re.findall(r"store: file://(\S+)", output["text"])
            if found:
                return Path(found[-1])
    raise AssertionError("the notebook printed no store: did its first cell run?")
