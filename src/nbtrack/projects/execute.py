"""Running a notebook headless in a fresh kernel (nbclient), with papermill's parameters.

Parameters are injected papermill's way: a cell tagged ``injected-parameters`` right
after the cell tagged ``parameters`` (or at the top). The kernel gets its own
environment, which is how the notebook's logging finds its run (``NBTRACK_RUN_ID``) and
its store (``NBTRACK_TRACKING_URI``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

KERNEL = "python3"


def read(path: str | os.PathLike[str]) -> Any:
    import nbformat

    return nbformat.read(os.fspath(path), as_version=4)


def write(notebook: Any, path: str | os.PathLike[str]) -> Path:
    import nbformat

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, os.fspath(target))
    return target


def parameterize(notebook: Any, parameters: dict[str, Any]) -> Any:
    """The notebook with an ``injected-parameters`` cell (papermill's), when any are given."""
    if not parameters:
        return notebook
    from papermill.parameterize import parameterize_notebook

    notebook.metadata.setdefault("papermill", {})
    notebook.metadata.setdefault("kernelspec", {"name": KERNEL, "language": "python"})
    for cell in notebook.cells:  # papermill reads every cell's tags (its loader adds them)
        cell.metadata.setdefault("tags", [])
    return parameterize_notebook(notebook, parameters, kernel_name=KERNEL, language="python")


def execute(
    notebook: Any,
    cwd: str | os.PathLike[str],
    env: dict[str, str],
    timeout: float | None = 600,
) -> BaseException | None:
    """Run every cell in a new kernel started in ``cwd`` with ``env``; outputs are written
    into ``notebook``. Returns the error that stopped it (a failing cell, a dead kernel,
    a timeout), or None when every cell ran."""
    from nbclient import NotebookClient

    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=timeout,
        resources={"metadata": {"path": os.fspath(cwd)}},
    )
    # The kernel's own stderr (startup notices, a crash) goes to a file, not into the
    # output of whoever runs this; it is attached to the error when the run fails.
    with tempfile.TemporaryFile() as log:
        try:
            client.execute(env=env, stderr=log)
        except Exception as error:  # CellExecutionError, DeadKernelError, TimeoutError, ...
            log.seek(0)
            error.kernel_stderr = log.read()[-4000:].decode(errors="replace")  # type: ignore[attr-defined]
            return error
    return None


def kernel_environment(**variables: str | None) -> dict[str, str]:
    """This process's environment for a kernel, with ``variables`` set (None: removed)."""
    env = dict(os.environ)
    for name in ("NBTRACK_RUN_ID", "NBTRACK_DIR", "NBTRACK_TRACKING_URI"):
        env.pop(name, None)
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def error_summary(error: BaseException) -> str:
    """One line for a failed execution: the cell's exception name and message."""
    ename, evalue = getattr(error, "ename", None), getattr(error, "evalue", None)
    if ename:
        return f"{ename}: {evalue}".strip().rstrip(":")[:1000]
    summary = f"{type(error).__name__}: {error}".strip().rstrip(":")
    stderr = getattr(error, "kernel_stderr", "").strip()
    if stderr:  # a kernel that died or never started: what it said last
        summary += f" (kernel stderr: {stderr.splitlines()[-1]})"
    return summary[:1000]
