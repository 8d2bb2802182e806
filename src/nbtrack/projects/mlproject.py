"""``nbtrack run DIR``: an MLflow ``MLproject`` entry point, run here as one tracked run.

The ``MLproject`` file names entry points, each with typed parameters (``string``,
``float``, ``int``, ``path``, ``uri``; a parameter without a default is required) and a
command template (``python train.py --alpha {alpha}``). Values are checked against their
types, substituted shell-quoted, and the command runs in the project folder in the
current environment (``conda_env``/``python_env``/``docker_env`` are not built). Its run
id is passed as ``NBTRACK_RUN_ID``, so ``import nbtrack as mlflow`` in the command logs
into the run this creates.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack.errors import InvalidParameterError
from nbtrack.projects import runs
from nbtrack.projects.execute import kernel_environment

MLPROJECT = "MLproject"
TYPES = ("string", "str", "float", "int", "integer", "path", "uri")


@dataclass
class Parameter:
    name: str
    type: str = "string"
    default: Any = None

    def check(self, value: Any, project: Path) -> str:
        """The value as it goes into the command, or a clear error naming the rule."""
        text = str(value)
        if self.type == "float":
            try:
                float(text)
            except ValueError:
                raise self._error(text, "a float") from None
        elif self.type in ("int", "integer"):
            try:
                int(text)
            except ValueError:
                raise self._error(text, "an integer") from None
        elif self.type == "path":
            path = Path(text) if Path(text).is_absolute() else project / text
            if not path.exists():
                raise self._error(text, "an existing path (relative to the project)")
            return str(path.resolve())
        elif self.type == "uri" and "://" not in text:
            return str((project / text).resolve())  # a local path, made absolute
        return text

    def _error(self, text: str, what: str) -> InvalidParameterError:
        return InvalidParameterError(
            f"Parameter '{self.name}' has type {self.type}: expected {what}, got {text!r}."
        )


@dataclass
class EntryPoint:
    name: str
    command: str
    parameters: dict[str, Parameter] = field(default_factory=dict)

    def resolve(self, given: dict[str, str], project: Path) -> dict[str, str]:
        """Every parameter's value: given, else its default; typed and checked.

        Raises
        ------
        InvalidParameterError
            For an unknown parameter, a missing required one, or a value of the wrong type.
        """
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            known = ", ".join(self.parameters) or "none"
            raise InvalidParameterError(
                f"Entry point '{self.name}' has no parameter {', '.join(map(repr, unknown))} "
                f"(its parameters: {known})."
            )
        missing = [n for n, p in self.parameters.items() if n not in given and p.default is None]
        if missing:
            raise InvalidParameterError(
                f"Entry point '{self.name}' needs a value for {', '.join(map(repr, missing))} "
                "(no default); pass -P NAME=VALUE."
            )
        return {
            name: parameter.check(given.get(name, parameter.default), project)
            for name, parameter in self.parameters.items()
        }

    def command_line(self, values: dict[str, str]) -> str:
        """The command with each ``{name}`` replaced by its shell-quoted value."""
        try:
            return self.command.format(**{k: shlex.quote(v) for k, v in values.items()})
        except (KeyError, IndexError) as error:
            raise InvalidParameterError(
                f"Entry point '{self.name}': the command uses {error} which is not a parameter."
            ) from None


@dataclass
class Project:
    name: str
    folder: Path
    entry_points: dict[str, EntryPoint]

    def entry_point(self, name: str) -> EntryPoint:
        if name in self.entry_points:
            return self.entry_points[name]
        if name.endswith((".py", ".sh")) and (self.folder / name).is_file():
            program = "python" if name.endswith(".py") else os.environ.get("SHELL", "bash")
            return EntryPoint(name, f"{program} {shlex.quote(name)}")
        raise InvalidParameterError(
            f"Project '{self.name}' has no entry point '{name}' (it has "
            f"{', '.join(self.entry_points) or 'none'}), and it is not a .py or .sh file there."
        )


def load(folder: str | os.PathLike[str]) -> Project:
    """Read ``folder/MLproject``.

    Raises
    ------
    InvalidParameterError
        If the file is missing or malformed, or a parameter has an unknown type.
    """
    import yaml

    root = Path(folder).resolve()
    path = root / MLPROJECT
    if not path.is_file():
        raise InvalidParameterError(f"No {MLPROJECT} file in {root}.")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InvalidParameterError(f"{path} is not valid YAML: {error}") from None
    entries = {}
    for name, entry in (spec.get("entry_points") or {}).items():
        if not isinstance(entry, dict) or "command" not in entry:
            raise InvalidParameterError(f"{path}: entry point '{name}' has no command.")
        parameters = {
            key: _parameter(key, value, path)
            for key, value in (entry.get("parameters") or {}).items()
        }
        entries[str(name)] = EntryPoint(str(name), str(entry["command"]), parameters)
    return Project(str(spec.get("name") or root.name), root, entries)


def _parameter(name: str, spec: Any, path: Path) -> Parameter:
    kind, default = (
        (spec, None)
        if isinstance(spec, str)
        else (
            (spec or {}).get("type", "string"),
            (spec or {}).get("default"),
        )
    )
    if kind not in TYPES:
        raise InvalidParameterError(
            f"{path}: parameter '{name}' has unknown type {kind!r}; use one of {', '.join(TYPES)}."
        )
    return Parameter(name, "string" if kind == "str" else kind, default)


def run_project(
    folder: str | os.PathLike[str],
    entry: str = "main",
    given: dict[str, str] | None = None,
    name: str | None = None,
) -> tuple[str, int]:
    """Run an entry point as a tracked run; return (run id, the command's exit code).

    The parameters are checked before anything is created or run.
    """
    project = load(folder)
    entry_point = project.entry_point(entry)
    values = entry_point.resolve(dict(given or {}), project.folder)
    command = entry_point.command_line(values)
    tags = {
        "mlflow.source.name": str(project.folder),
        "mlflow.source.type": "PROJECT",
        "mlflow.project.entryPoint": entry_point.name,
        "mlflow.project.backend": "local",
        "mlflow.project.env": "local",
    }
    run_id = runs.schedule(name or f"{project.name}:{entry_point.name}", values, tags)
    env = kernel_environment(
        NBTRACK_RUN_ID=run_id,
        NBTRACK_TRACKING_URI=runs.store_uri(),
        # "The current environment": ``python`` in the command is this interpreter.
        PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
    )
    print(f"nbtrack: run {run_id[:8]} ({entry_point.name}): {command}", flush=True)
    try:
        code = subprocess.run(command, shell=True, cwd=project.folder, env=env).returncode
    except KeyboardInterrupt:
        runs.finish(run_id, "KILLED", "KeyboardInterrupt")
        raise
    error = None if code == 0 else f"the command exited with status {code}"
    runs.finish(run_id, "FINISHED" if code == 0 else "FAILED", error)
    return run_id, code
