"""``nbtrack run NOTEBOOK``: the notebook once per parameter set, each execution a tracked run.

``-p k=v`` sets a parameter for every execution and ``--grid k=v1,v2`` sweeps one (several
grids multiply). Each parameter set is injected after the notebook's ``parameters`` cell
(papermill's convention) and runs headless in a fresh kernel, up to ``jobs`` at a time,
under a progress bar. Its run holds the parameters and whatever the notebook logs, and
the executed notebook as an artifact; a notebook that fails makes a FAILED run and the
sweep goes on.
"""

from __future__ import annotations

import ast
import itertools
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtrack.errors import InvalidParameterError
from nbtrack.projects import execute, runs


@dataclass
class Outcome:
    """One execution of the sweep."""

    run_id: str
    parameters: dict[str, Any]
    status: str  # FINISHED | FAILED
    error: str | None = None


def parse_value(text: str) -> Any:
    """A ``-p`` value as papermill's CLI reads it: a Python literal if it is one, else text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def parameter_sets(fixed: list[str], grids: list[str]) -> list[dict[str, Any]]:
    """Every combination of the ``--grid`` values, each with the ``-p`` values added.

    Raises
    ------
    InvalidParameterError
        For an item that is not ``KEY=VALUE``, or a key that is not a Python name.
    """
    base = dict(_pair(item, "-p") for item in fixed)
    axes = []
    for item in grids:
        key, values = _pair(item, "--grid", raw=True)
        axes.append([(key, parse_value(v)) for v in values.split(",") if v.strip()])
    if not axes:
        return [base]
    return [{**base, **dict(combo)} for combo in itertools.product(*axes)]


def _pair(item: str, option: str, raw: bool = False) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise InvalidParameterError(
            f"{option} expects NAME=VALUE with a Python name, got {item!r}."
        )
    return key, value if raw else parse_value(value)


def run_sweep(
    notebook: str | os.PathLike[str],
    sets: list[dict[str, Any]],
    jobs: int = 1,
    name: str | None = None,
    timeout: float | None = 600,
    progress: bool = True,
) -> list[Outcome]:
    """Execute ``notebook`` once per parameter set; one tracked run each.

    Parameters
    ----------
    notebook
        The ``.ipynb`` file; it runs with its own folder as working directory.
    sets
        One dict of parameters per execution (see :func:`parameter_sets`).
    jobs
        How many kernels run at once.
    name
        Run names start with this (default: the notebook's stem).

    Returns
    -------
    list of Outcome
        In the order of ``sets``.
    """
    from tqdm.auto import tqdm

    path = Path(notebook).resolve()
    if not path.is_file():
        raise InvalidParameterError(f"No notebook at {path}.")
    if jobs < 1:
        raise InvalidParameterError(f"--jobs must be at least 1, got {jobs}.")
    prefix = name or path.stem
    scheduled = [(_schedule(path, prefix, p), p) for p in sets]
    outcomes: dict[str, Outcome] = {}
    with (
        tempfile.TemporaryDirectory(prefix="nbtrack-run-") as folder,
        tqdm(
            total=len(scheduled), desc=f"nbtrack run {path.name}", unit="run", disable=not progress
        ) as bar,
        ThreadPoolExecutor(max_workers=jobs) as pool,
    ):
        futures = [
            pool.submit(_execute_one, path, run_id, params, Path(folder), timeout)
            for run_id, params in scheduled
        ]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[outcome.run_id] = outcome
            bar.update(1)
            bar.set_postfix_str(f"{outcome.status.lower()} {outcome.run_id[:8]}")
    return [outcomes[run_id] for run_id, _ in scheduled]


def _schedule(path: Path, prefix: str, params: dict[str, Any]) -> str:
    label = ",".join(f"{k}={v}" for k, v in params.items())
    tags = {
        "mlflow.source.name": str(path),
        "mlflow.source.type": "NOTEBOOK",
        "nbtrack.project.notebook": str(path),
    }
    return runs.schedule(f"{prefix}[{label}]" if label else prefix, params, tags)


def _execute_one(
    path: Path, run_id: str, params: dict[str, Any], folder: Path, timeout: float | None
) -> Outcome:
    """Run one parameter set; never raises, so one broken execution cannot stop the rest."""
    output = folder / run_id / path.name
    try:
        notebook = execute.parameterize(execute.read(path), params)
        env = execute.kernel_environment(
            NBTRACK_RUN_ID=run_id,
            NBTRACK_TRACKING_URI=runs.store_uri(),
            JPY_SESSION_NAME=str(path),
        )
        error = execute.execute(notebook, path.parent, env, timeout)
        execute.write(notebook, output)
    except Exception as failure:  # e.g. an unreadable notebook: this run fails alone
        error = failure
    summary = execute.error_summary(error) if error is not None else None
    status = "FAILED" if error is not None else "FINISHED"
    runs.finish(run_id, status, summary, output if output.exists() else None)
    return Outcome(run_id, params, status, summary)


def summary_table(outcomes: list[Outcome]) -> str:
    """A line per run: id, status, parameters, error."""
    lines = [f"{'run':<8}  {'status':<8}  parameters"]
    for o in outcomes:
        shown = ", ".join(f"{k}={v!r}" for k, v in o.parameters.items()) or "-"
        error = f"  ({o.error})" if o.error else ""
        lines.append(f"{o.run_id[:8]:<8}  {o.status:<8}  {shown}{error}")
    return "\n".join(lines)
