"""Reproducing a run: a clean notebook of the cells it depends on, optionally re-executed.

A run started in a cell (with ``%load_ext nbtrack``) records its *slice*: the cells whose
definitions it read, transitively, in the order they ran (``capture/trace.py``).
:func:`reproduce` writes them to a new notebook: a setup cell (the extension, and
autolog as it was on), a cell tagged ``parameters`` holding the run's params that the code
names, then the slice. With ``execute=True`` the notebook runs headless in a fresh kernel
against the same store and experiment; the run it makes is tagged
``nbtrack.reproduces=<original id>``, gets the executed notebook as an artifact, and each of
the original's metrics is compared with the new value within ``rtol``/``atol``.
"""

from __future__ import annotations

import ast
import html
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack.capture.defuse import analyze
from nbtrack.capture.redact import REDACTED
from nbtrack.errors import NotFoundError
from nbtrack.tracking import fluent

REPRODUCES_TAG = "nbtrack.reproduces"
MATCHES_TAG = "nbtrack.reproduction.matches"
_TRACK_LINE = re.compile(r"^\s*%%track\b[^\n]*\n?")


@dataclass
class MetricMatch:
    key: str
    original: float
    reproduced: float | None  # None: the new run did not log it

    def matches(self, rtol: float, atol: float) -> bool:
        if self.reproduced is None:
            return False
        if math.isnan(self.original) or math.isnan(self.reproduced):
            return math.isnan(self.original) and math.isnan(self.reproduced)
        return math.isclose(self.original, self.reproduced, rel_tol=rtol, abs_tol=atol)


@dataclass
class Reproduction:
    """What :func:`reproduce` made: the notebook and, when executed, the comparison."""

    original_run_id: str
    notebook: Path
    executed: bool = False
    run_id: str | None = None  # the reproducing run
    error: str | None = None  # why the execution failed
    metrics: list[MetricMatch] = field(default_factory=list)
    rtol: float = 1e-6
    atol: float = 1e-9

    @property
    def matches(self) -> bool:
        """True when the notebook ran and every compared metric is within tolerance."""
        return (
            self.executed
            and self.error is None
            and self.run_id is not None
            and all(m.matches(self.rtol, self.atol) for m in self.metrics)
        )

    def lines(self) -> list[tuple[str, str, str, str]]:
        return [
            (
                m.key,
                _number(m.original),
                "-" if m.reproduced is None else _number(m.reproduced),
                "yes" if m.matches(self.rtol, self.atol) else "NO",
            )
            for m in self.metrics
        ]

    def _head(self) -> list[str]:
        head = [f"reproduction of run {self.original_run_id}", f"notebook: {self.notebook}"]
        if not self.executed:
            return [*head, "not executed (execute=True runs it in a fresh kernel)"]
        head.append(f"new run: {self.run_id or '-'}")
        if self.error:
            head.append(f"execution failed: {self.error}")
        verdict = "metrics match" if self.matches else "metrics DO NOT match"
        return [*head, f"{verdict} (rtol={self.rtol:g}, atol={self.atol:g})"]

    def __repr__(self) -> str:
        if not self.executed:
            return "\n".join(self._head())
        rows = [("metric", "original", "reproduced", "match"), *self.lines()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        table = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join([*self._head(), *table])

    def _repr_html_(self) -> str:
        e = html.escape
        head = f"<pre>{e(chr(10).join(self._head()))}</pre>"
        if not self.executed:
            return head
        rows = "".join(
            "<tr>" + "".join(f"<td>{e(c)}</td>" for c in line) + "</tr>" for line in self.lines()
        )
        return (
            f"{head}<table><thead><tr><th>metric</th><th>original</th><th>reproduced</th>"
            f"<th>match</th></tr></thead><tbody>{rows}</tbody></table>"
        )


def reproduce(
    run: str,
    execute: bool = False,
    path: str | os.PathLike[str] | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    timeout: float | None = 600,
) -> Reproduction:
    """Write the notebook that reproduces ``run``; with ``execute``, run it and compare.

    Parameters
    ----------
    run
        A run id, id prefix, run name or ``'last'``.
    execute
        Run the notebook headless in a fresh kernel as a new run and compare metrics.
    path
        Where to write the notebook (default ``reproduce-<name>-<id>.ipynb`` in the
        working directory).
    rtol, atol
        Relative and absolute tolerance for a metric to match.

    Raises
    ------
    NotFoundError
        If the run is unknown or has no execution trace (it did not start in a cell of a
        kernel with ``%load_ext nbtrack``).
    """
    store = fluent.current_store()
    row = store.resolve_run(run)
    trace = _trace_record(store, row["run_id"])
    notebook = build_notebook(row, trace)
    target = Path(path) if path is not None else _default_path(row)
    from nbtrack.projects import execute as runner

    runner.write(notebook, target)
    result = Reproduction(row["run_id"], target.resolve(), rtol=rtol, atol=atol)
    if execute:
        _execute(result, row, trace, timeout)
    return result


def _trace_record(store: Any, run_id: str) -> dict[str, Any]:
    records = store.records(run_id, "trace")
    if not records:
        raise NotFoundError(
            f"Run {run_id} has no execution trace: only runs started in a notebook cell "
            "after %load_ext nbtrack can be reproduced."
        )
    return records[-1]


def _default_path(row: dict[str, Any]) -> Path:
    name = re.sub(r"[^\w.-]+", "-", row.get("run_name") or "run").strip("-") or "run"
    return Path.cwd() / f"reproduce-{name}-{row['run_id'][:8]}.ipynb"


# -- the notebook ----------------------------------------------------------------------------


def build_notebook(row: dict[str, Any], trace: dict[str, Any]) -> Any:
    """The clean notebook: setup, ``parameters`` cell, then the slice in the order it ran."""
    import nbformat

    cells = trace["slice"]
    sources = [_clean(c["source"], last=i == len(cells) - 1) for i, c in enumerate(cells)]
    intro = (
        f"# Reproduction of run `{row.get('run_name', '')}` (`{row['run_id']}`)\n\n"
        f"The {len(cells)} cells this run depends on, of the {trace['cells']} its kernel ran, "
        "in the order they ran. Generated by `nbtrack.reproduce`."
    )
    if trace.get("stale"):
        intro += f"\n\nThe original run was **stale**: {trace['stale']}."
    setup = ["%load_ext nbtrack"]
    if trace.get("autolog"):
        setup.append(f"%track autolog on {','.join(trace['autolog'])}")
    parameters = nbformat.v4.new_code_cell(_parameters_source(row, sources))
    parameters.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(intro),
        nbformat.v4.new_code_cell("\n".join(setup)),
        parameters,
        *(nbformat.v4.new_code_cell(source) for source in sources),
    ]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["nbtrack"] = {"reproduces": row["run_id"], "session": trace["session"]}
    return notebook


def _clean(source: str, last: bool) -> str:
    """A slice cell's source; earlier ``%%track`` cells run as plain code, so only the
    run's own cell makes a run."""
    return source if last else _TRACK_LINE.sub("", source, count=1)


def _parameters_source(row: dict[str, Any], sources: list[str]) -> str:
    """``name = value`` for each param that names a variable the slice's code defines (so
    a param autolog took from an estimator, say, never shadows anything)."""
    names: set[str] = set()
    for source in sources:
        body = _TRACK_LINE.sub("", source, count=1)
        names |= set(analyze(_python(body)).defs)
    lines = ["# Parameters of the original run"]
    for key, value in sorted(row.get("params", {}).items()):
        if key.isidentifier() and key in names and REDACTED not in value:
            lines.append(f"{key} = {_literal(value)}")
    return "\n".join(lines)


def _python(source: str) -> str:
    # Line magics and shell escapes are not Python; analysing the rest is enough here.
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )


def _literal(value: str) -> str:
    """The param (stored as text) as Python source: its literal if it is one, else a string."""
    try:
        return repr(ast.literal_eval(value))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return repr(value)


# -- executing and comparing -------------------------------------------------------------------


def _execute(result: Reproduction, row: dict[str, Any], trace: dict[str, Any], timeout) -> None:
    from nbtrack.projects import execute as runner

    store = fluent.current_store()
    experiment = store.get_experiment(row["experiment_id"])["name"]
    env = runner.kernel_environment(
        NBTRACK_TRACKING_URI=os.fspath(store.root),
        NBTRACK_EXPERIMENT_NAME=experiment,
        MLFLOW_EXPERIMENT_NAME=None,
        JPY_SESSION_NAME=str(result.notebook),
    )
    cwd = Path(trace.get("cwd") or result.notebook.parent)
    if not cwd.is_dir():
        cwd = result.notebook.parent
    notebook = runner.read(result.notebook)
    started = int(time.time() * 1000) - 1
    error = runner.execute(notebook, cwd, env, timeout)
    result.executed = True
    result.error = runner.error_summary(error) if error is not None else None
    new = _new_run(store, row, str(result.notebook), started)
    if new is not None:
        result.run_id = new["run_id"]
        latest = {k: p[0] for k, p in new.get("metrics", {}).items()}
        result.metrics = [
            MetricMatch(key, point[0], latest.get(key))
            for key, point in sorted(row.get("metrics", {}).items())
            if not key.startswith("system/")  # timings and memory are not results
        ]
        executed = result.notebook.with_suffix(".executed.ipynb")
        runner.write(notebook, executed)
        store.add_artifact(new["run_id"], "reproduction.ipynb", executed)
        tags = {REPRODUCES_TAG: row["run_id"], MATCHES_TAG: str(result.matches).lower()}
        store.set_tags(new["run_id"], tags)
    elif result.error is None:
        result.error = "the notebook ran but made no run"


def _new_run(store: Any, original: dict[str, Any], source: str, since: int) -> dict | None:
    """The run the reproduction made: from that notebook, started after ``since``; the one
    named like the original if there is one, else the newest top-level run."""
    made = [
        r
        for r in store.runs()
        if r.get("tags", {}).get("mlflow.source.name") == source
        and r.get("start_time", 0) >= since
        and r["run_id"] != original["run_id"]
    ]
    named = [r for r in made if r.get("run_name") == original.get("run_name")]
    top = [r for r in made if "mlflow.parentRunId" not in r.get("tags", {})]
    for candidates in (named, top, made):
        if candidates:
            return dict(max(candidates, key=lambda r: r.get("start_time", 0)))
    return None


def _number(value: float) -> str:
    return f"{value:.6g}"


def track_reproduce(magics: Any, argv: list[str], rest: str) -> Reproduction:
    """``%track reproduce RUN [--execute] [--path P] [--rtol X] [--atol X]``."""
    import argparse

    from IPython.core.error import UsageError

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # argparse would sys.exit
            raise UsageError(f"%track reproduce: {message}\n{self.format_usage()}")

    parser = _Parser(prog="%track reproduce", add_help=False)
    parser.add_argument("run")
    parser.add_argument("--execute", action="store_true")
    parser.add_argument("--path")
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--atol", type=float, default=1e-9)
    args = parser.parse_args(argv)
    return reproduce(args.run, args.execute, args.path, args.rtol, args.atol)
