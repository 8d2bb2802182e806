"""Where code runs: the notebook path and the source that MLflow's system tags name."""

from __future__ import annotations

import os
import sys

from nbtrack.tracking.context import RunContext


def notebook_path() -> str | None:
    """The running notebook's path when it can be found, else None.

    Jupyter servers pass it to kernels as ``JPY_SESSION_NAME`` (ipykernel also puts it in
    ``__session__``); VS Code sets ``__vsc_ipynb_file__``.
    """
    shell = ipython_shell()
    if shell is not None:
        namespace = shell.user_ns
        for name in ("__vsc_ipynb_file__", "__session__"):
            value = namespace.get(name)
            if isinstance(value, str) and value.endswith(".ipynb"):
                return value
    path = os.environ.get("JPY_SESSION_NAME")
    return path if path and path.endswith(".ipynb") else None


def ipython_shell():
    """The running IPython shell, without importing IPython when it is not loaded."""
    if "IPython" not in sys.modules:
        return None
    return sys.modules["IPython"].get_ipython()


def source() -> tuple[str, str]:
    """MLflow's ``(mlflow.source.name, mlflow.source.type)`` for the current process."""
    notebook = notebook_path()
    if notebook is not None:
        return notebook, "NOTEBOOK"
    if ipython_shell() is not None:
        return "<ipython>", "NOTEBOOK"
    script = sys.argv[0] if sys.argv and sys.argv[0] else "<python>"
    return (os.path.abspath(script) if os.path.exists(script) else script), "LOCAL"


def run_context(store: object) -> RunContext:
    """The run context provider (tracking/context.py): MLflow's source tags."""
    name, kind = source()
    return RunContext({"mlflow.source.name": name, "mlflow.source.type": kind}, [])
