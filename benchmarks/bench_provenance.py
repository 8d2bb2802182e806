"""What provenance costs: autolog on a real fit, environment capture, execution-trace capture.

Workloads (see benchmarks/README.md):

    a  RandomForestClassifier (100 trees) fit on 10,000 x 20 rows, plain vs sklearn autolog,
       interleaved; the fit call's wall time, and the time until autolog's background
       logging (metrics, plots) has landed
    b  environment capture: once per session (fresh processes) and per run afterwards
       (start+end of an empty run, with vs without the environment reference)
    c  trace capture per cell with 500 cells of history (``pre_run_cell`` + ``post_run_cell``
       work), and the slice/staleness verdict plus the trace record for a run at that depth

Usage::

    .venv/bin/python benchmarks/bench_provenance.py            # ~2.5 min on 2 cores
    .venv/bin/python benchmarks/bench_provenance.py --quick    # smaller repeats

Not a test: it prints medians and PASS/FAIL against the targets and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from time import perf_counter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

FULL = {"a_repeats": 12, "b_processes": 7, "b_runs": 300, "c_cells": 500, "c_runs": 50}
QUICK = {"a_repeats": 4, "b_processes": 3, "b_runs": 100, "c_cells": 500, "c_runs": 20}


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


# -- a: autolog on a RandomForest fit ------------------------------------------------------------


def autolog_overhead(repeats: int, folder: Path) -> list[tuple[str, str, str, str]]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import nbtrack

    nbtrack.set_tracking_uri(folder / "store-a")
    X, y = make_classification(n_samples=10_000, n_features=20, random_state=0)

    def fit() -> None:
        RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)

    # The forest's own fit, timed inside each call: autolog wraps this function, so a
    # logged call minus the fit inside it is autolog's own work, whatever the host's
    # speed did between one fit and the next.
    inner: list[float] = []
    original = RandomForestClassifier.fit

    def timed_fit(self, *args, **kwargs):
        started = perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            inner.append(perf_counter() - started)

    RandomForestClassifier.fit = timed_fit
    try:
        return _autolog_pairs(fit, inner, repeats)
    finally:
        nbtrack.autolog(disable=True)
        del RandomForestClassifier.fit


def _autolog_pairs(
    fit: Callable[[], None], inner: list[float], repeats: int
) -> list[tuple[str, str, str, str]]:
    import nbtrack

    fit()  # warm-up: imports, caches, thread pools (the machine's noise is ~5-10% per fit)
    nbtrack.autolog(integrations="sklearn")
    fit()
    nbtrack.autologging.wait()
    walls: dict[str, list[float]] = {"plain": [], "logged": []}
    cpus: dict[str, list[float]] = {"plain": [], "logged": []}  # the fitting thread's
    own, landed = [], []
    # Pairs in alternating order (plain-logged, logged-plain, ...), so the machine's
    # drift and whatever one fit leaves behind for the next fall on both sides alike.
    orders = (("plain", "logged"), ("logged", "plain"))
    for kind in [k for i in range(repeats) for k in orders[i % 2]]:
        if kind == "plain":
            nbtrack.autolog(disable=True)
        else:
            nbtrack.autolog(integrations="sklearn")
        started, cpu = perf_counter(), time.thread_time()
        fit()
        walls[kind].append(perf_counter() - started)
        cpus[kind].append(time.thread_time() - cpu)
        if kind == "logged":
            own.append(walls[kind][-1] - inner[-1])
            nbtrack.autologging.wait()  # background logging done before the next fit
            landed.append(perf_counter() - started)
    plain, logged = walls["plain"], walls["logged"]
    base = statistics.median(plain)
    added = statistics.median(own) / base
    per_pair = statistics.median(a / p - 1 for a, p in zip(logged, plain, strict=True))
    overhead = statistics.median(logged) / base - 1
    cpu_overhead = statistics.median(cpus["logged"]) / statistics.median(cpus["plain"]) - 1
    return [
        ("a", "RF fit (100 trees, 10,000x20), plain", f"{median_ms(plain):,.0f} ms", ""),
        ("a", "the same fit with sklearn autolog (fit call)", f"{median_ms(logged):,.0f} ms", ""),
        (
            "a",
            f"autolog's own work in the fit call ({median_ms(own):.0f} ms)",
            f"{added:+.1%}",
            _verdict(added <= 0.05, "<= 5%"),
        ),
        (
            "a",
            "autologged / plain fit call, median of per-pair ratios",
            f"{per_pair:+.1%}",
            _verdict(per_pair <= 0.05, "<= 5%"),
        ),
        ("a", "the same, ratio of medians", f"{overhead:+.1%}", ""),
        ("a", "the same in the fitting thread's CPU time", f"{cpu_overhead:+.1%}", ""),
        (
            "a",
            "fit + background logging landed",
            f"{median_ms(landed):,.0f} ms",
            f"(+{statistics.median(landed) / base - 1:.0%}, off the fit call)",
        ),
    ]


# -- b: environment capture ----------------------------------------------------------------------

CAPTURE = """
import json, sys, time
sys.path.insert(0, {src!r})
from nbtrack.capture import environment
started = time.perf_counter()
captured = environment.capture()
captured_at = time.perf_counter()
environment.write({store!r}, captured)
print(json.dumps([captured_at - started, time.perf_counter() - started, len(captured["packages"])]))
"""


def environment_cost(processes: int, runs: int, folder: Path) -> list[tuple[str, str, str, str]]:
    captures, firsts, packages = [], [], 0
    script = CAPTURE.format(src=str(ROOT / "src"), store=str(folder / "store-b"))
    for _ in range(processes + 1):  # the first process warms the page cache
        output = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        capture, first, packages = json.loads(output)
        captures.append(capture)
        firsts.append(first)
    captures, firsts = captures[1:], firsts[1:]

    import nbtrack
    from nbtrack.capture import environment
    from nbtrack.tracking import context, fluent

    nbtrack.set_tracking_uri(folder / "store-b")
    with nbtrack.start_run():
        pass  # captured once here
    per_lookup = []
    for _ in range(runs):
        started = perf_counter()
        environment.run_context(fluent.current_store())
        per_lookup.append(perf_counter() - started)
    provider = "nbtrack.capture.environment:run_context"
    with_env, without_env = [], []
    for _ in range(10):  # alternating blocks, so drift hits both sides alike
        with_env += _run_cost(nbtrack, runs // 10)
        context.unregister(provider)
        try:
            without_env += _run_cost(nbtrack, runs // 10)
        finally:
            context.register(provider)
    per_run = statistics.median(with_env) - statistics.median(without_env)
    return [
        (
            "b",
            f"capture, fresh process ({packages} distributions, git)",
            f"{median_ms(captures):.1f} ms",
            _verdict(median_ms(firsts) <= 300, "<= 300 ms"),
        ),
        ("b", "capture + write the environment file", f"{median_ms(firsts):.1f} ms", ""),
        ("b", "per run after: environment lookup", f"{median_ms(per_lookup) * 1000:.1f} µs", ""),
        ("b", "start+end run, with the environment reference", f"{median_ms(with_env):.3f} ms", ""),
        ("b", "start+end run, without it", f"{median_ms(without_env):.3f} ms", ""),
        (
            "b",
            "per run after: added to start+end",
            f"{per_run * 1000:+.3f} ms",
            _verdict(per_run * 1000 <= 1, "<= 1 ms"),
        ),
    ]


def _run_cost(nbtrack, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = perf_counter()
        with nbtrack.start_run():
            pass
        samples.append(perf_counter() - started)
    return samples


# -- c: execution trace --------------------------------------------------------------------------


def notebook_cell(i: int) -> str:
    """A plausible cell: imports, data, features, a model, plots, each reading earlier names."""
    kinds = [
        f"import numpy as np\nimport pandas as pd\nfrom sklearn.linear_model import Ridge as R{i}",
        f"data_{i} = pd.DataFrame(np.random.rand(100, 4), columns=list('abcd'))\n"
        f"%time len(data_{i})",
        f"features_{i} = data_{i - 1}[['a', 'b']].to_numpy() * {i}\nlabels_{i} = data_{i - 1}['c']",
        textwrap.dedent(
            f"""\
            def score_{i}(model, X, y):
                predicted = model.predict(X)
                return float(((predicted - y) ** 2).mean()) + offset_{i % 7}

            model_{i} = R{i - 3}(alpha=0.{i % 9 + 1}).fit(features_{i - 1}, labels_{i - 1})
            result_{i} = score_{i}(model_{i}, features_{i - 1}, labels_{i - 1})
            for step in range(3):
                result_{i} = result_{i} * 0.9 + step
            """
        ),
        f"offset_{i % 7} = {i} * 0.5\n"
        f"summary_{i} = {{'n': {i}, 'mean': float(data_{i - 4}['a'].mean())}}",
    ]
    return kinds[i % len(kinds)]


def trace_cost(cells: int, runs: int, folder: Path) -> list[tuple[str, str, str, str]]:
    from IPython.core.inputtransformer2 import TransformerManager

    from nbtrack.capture.trace import ExecutionTrace

    trace = ExecutionTrace(transform=TransformerManager().transform_cell)
    per_cell = []
    for i in range(cells):
        source = notebook_cell(i)
        started = perf_counter()
        trace.start_cell(i + 1, f"cell-{i % 120}", source)  # ids repeat: cells re-run
        trace.finish_cell()
        per_cell.append(perf_counter() - started)
    last_100 = per_cell[-100:]
    record_cost, write_cost, slices = [], [], []
    for r in range(runs):
        trace.start_cell(cells + r + 1, "tracked", "%%track\nfinal = result_498 + result_493")
        started = perf_counter()
        record = trace.run_record()
        record_cost.append(perf_counter() - started)
        started = perf_counter()
        trace.write_session(folder / "store-c")
        write_cost.append(perf_counter() - started)
        trace.finish_cell()
        slices.append(len(record["slice"]))
    return [
        (
            "c",
            f"trace one cell ({cells} cells of history), median",
            f"{median_ms(per_cell):.3f} ms",
            _verdict(median_ms(last_100) <= 1, "<= 1 ms"),
        ),
        ("c", "the same, last 100 cells (history 400-500)", f"{median_ms(last_100):.3f} ms", ""),
        ("c", "the same, mean", f"{statistics.mean(per_cell) * 1000:.3f} ms", ""),
        (
            "c",
            "the same, 95th percentile",
            f"{statistics.quantiles(per_cell, n=20)[-1] * 1000:.3f} ms",
            "",
        ),
        (
            "c",
            f"run record: slice ({statistics.median(slices):.0f} cells) + staleness",
            f"{median_ms(record_cost):.3f} ms",
            "",
        ),
        (
            "c",
            "append the session's new cells to its trace file",
            f"{median_ms(write_cost):.3f} ms",
            "",
        ),
    ]


def _verdict(ok: bool, target: str) -> str:
    return f"{target}  {'PASS' if ok else 'FAIL'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", default="a,b,c", help="workloads, e.g. b,c")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    warnings.filterwarnings("ignore")
    os.environ.pop("NBTRACK_RUN_ID", None)
    rows: list[tuple[str, str, str, str]] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="nbtrack-bench-provenance-") as folder:
        only = set(args.only.split(","))
        if "c" in only:
            rows += trace_cost(sizes["c_cells"], sizes["c_runs"], Path(folder))
        if "b" in only:
            rows += environment_cost(sizes["b_processes"], sizes["b_runs"], Path(folder))
        if "a" in only:
            rows += autolog_overhead(sizes["a_repeats"], Path(folder))
        from nbtrack.tracking.session import close_stores

        close_stores()  # durable before the folder goes away
    rows.sort(key=lambda r: r[0])
    print(
        f"nbtrack provenance costs - {'quick' if args.quick else 'full'} run; "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus; "
        f"{time.time() - started:.0f} s"
    )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("", "measurement (medians)", "value", "target")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
