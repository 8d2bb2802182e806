"""The environment files of a model package, pinned from the running interpreter.

``requirements.txt`` lists ``name==version`` of what loading the model needs,
``python_env.yaml`` the Python version and build tools, ``conda.yaml`` the same for conda,
all in the shapes MLflow writes so that its tools can rebuild the environment.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

# Distributions a flavor needs at load time; pinned if installed, skipped if not.
SKLEARN_REQUIREMENTS = ("mlflow", "cloudpickle", "numpy", "pandas", "scikit-learn", "scipy")
PYFUNC_REQUIREMENTS = ("nbtrack", "cloudpickle", "numpy", "pandas")
# A custom python model subclasses nbtrack's PythonModel, and MLflow's loader module reads it.
PYTHON_MODEL_REQUIREMENTS = ("mlflow", "nbtrack", "cloudpickle", "numpy", "pandas")


def python_version() -> str:
    return platform.python_version()


# Read once per process: each read parses files (a version ~0.5 ms, the map of import
# names ~0.5 s), and what a process has imported does not change under it. What is not
# found is looked up again: a cell may ``%pip install`` it meanwhile.
_versions: dict[str, str] = {}
_owners: dict[str, list[str]] = {}  # import name -> the distributions that provide it


def pinned(distribution: str) -> str | None:
    """``name==version`` of an installed distribution, or None if it is not installed."""
    if distribution not in _versions:
        try:
            _versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return None
    return f"{distribution}=={_versions[distribution]}"


def requirements(
    base: tuple[str, ...],
    model: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
) -> list[str]:
    """The package's requirement lines.

    ``pip_requirements`` replaces the inferred list (as in MLflow); otherwise ``base`` and
    the distribution that defines ``model``'s class are pinned, then
    ``extra_pip_requirements`` appended.
    """
    if pip_requirements is not None:
        return [str(r) for r in pip_requirements]
    names = list(base)
    owner = _distribution_of(model)
    if owner is not None and owner not in names:
        names.append(owner)
    lines = [line for line in map(pinned, names) if line is not None]
    return lines + [str(r) for r in extra_pip_requirements or []]


def _distribution_of(model: Any) -> str | None:
    if model is None:
        return None
    top = type(model).__module__.split(".")[0]
    if top in ("__main__", "builtins"):
        return None
    if top not in _owners:
        _owners.update(metadata.packages_distributions())
    return (_owners.get(top) or [None])[0]


def python_env(requirement_file: str = "requirements.txt") -> dict[str, Any]:
    """The content of ``python_env.yaml`` (what ``virtualenv``-based MLflow tools read)."""
    build = [line or name for name in ("pip", "setuptools", "wheel") if (line := pinned(name))]
    return {
        "python": python_version(),
        "build_dependencies": build,
        "dependencies": [f"-r {requirement_file}"],
    }


def conda_env(requirement_lines: list[str]) -> dict[str, Any]:
    """The content of ``conda.yaml``: Python from conda-forge, everything else from pip."""
    pip = pinned("pip")
    pip_spec = f"pip<={pip.split('==')[1]}" if pip else "pip"
    return {
        "channels": ["conda-forge"],
        "dependencies": [f"python={python_version()}", pip_spec, {"pip": requirement_lines}],
        "name": "mlflow-env",
    }
