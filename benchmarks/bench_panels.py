"""The panels' costs, measured in a real kernel (jupyter_client), as a user pays them.

Workloads (see benchmarks/README.md):

    a  RunTable over 10,000 runs: runs_table() + display (the bundle with its static forms)
    b  MetricCurves over one run of 1,000,000 points: metric_curves() + display (with PNG)
    c  a 10,000-step loop logging a metric each step, in a %%track cell (live chart open)
       vs the same loop in a plain run (no chart); loop time measured inside the kernel
    d  an empty %%track cell (now with the run card widget) minus the same cell untracked

Usage::

    .venv/bin/python benchmarks/bench_panels.py            # ~2 min on 2 cores
    .venv/bin/python benchmarks/bench_panels.py --quick    # fewer repeats

Not a test: prints a table of medians and PASS/FAIL against the targets; exits 0 either way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
RUNS = 10_000
POINTS = 1_000_000
LOOP_STEPS = 10_000
RESULT = "BENCH-RESULT "


def build_store(root: Path) -> str:
    """10,000 runs (10 params, 5 metrics, 2 tags each) and one run of 1,000,000 points."""
    import nbtrack

    nbtrack.set_tracking_uri(root)
    nbtrack.set_experiment("bench")
    for i in range(RUNS):
        with nbtrack.start_run(run_name=f"run-{i}"):
            nbtrack.log_params({f"p{k}": f"{(i * 7 + k) % 13}" for k in range(10)})
            nbtrack.log_metrics({f"m{k}": ((i * 31 + k) % 97) / 97 for k in range(5)})
            nbtrack.set_tags({"team": "a" if i % 2 else "b", "seed": str(i % 5)})
    with nbtrack.start_run(run_name="million") as run:
        log = nbtrack.log_metric
        for step in range(POINTS):
            log("loss", 1.0 / (1 + step) + (step % 100) * 1e-4, step=step)
    nbtrack.flush()
    return run.run_id


class Kernel:
    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import start_new_kernel

        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        # One BLAS thread: the loop's small matrix products then cost the same every run
        # instead of racing BLAS worker threads for the 2 cores.
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        for variable in ("NBTRACK_DIR", "NBTRACK_TRACKING_URI", "JPY_SESSION_NAME"):
            env.pop(variable, None)
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)

    def run(self, code: str, timeout: float = 600) -> tuple[float, list[dict[str, Any]]]:
        """Execute; return the client wall time and the iopub messages of the request."""
        messages: list[dict[str, Any]] = []
        started = time.perf_counter()
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=messages.append)
        wall = time.perf_counter() - started
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{code[:80]!r} failed: {reply['content'].get('evalue')}")
        return wall, messages

    def result(self, code: str, timeout: float = 600) -> Any:
        """Execute code that prints ``RESULT <json>``; return the decoded JSON."""
        _, messages = self.run(code, timeout)
        for msg in messages:
            text = msg["content"].get("text", "") if msg["msg_type"] == "stream" else ""
            for line in text.splitlines():
                if line.startswith(RESULT):
                    return json.loads(line[len(RESULT) :])
        raise RuntimeError(f"no result from {code[:80]!r}")

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


SETUP = """
import json, statistics, time
import numpy as np
import nbtrack
from IPython.display import display
%load_ext nbtrack
nbtrack.set_experiment("bench")
import nbtrack.widgets.table, nbtrack.widgets.curves, nbtrack.widgets.card  # imports untimed
def report(value):
    print("BENCH-RESULT " + json.dumps(value), flush=True)
"""

TABLE = """
times = []
for _ in range({repeats}):
    started = time.perf_counter()
    table = nbtrack.runs_table()
    display(table)
    times.append(time.perf_counter() - started)
sort_times = []
for column in ["metrics.m1", "params.p3", "name", "metrics.m1", "start"]:
    started = time.perf_counter()
    table._handle_custom_msg({{"kind": "sort", "column": column}}, [])
    sort_times.append(time.perf_counter() - started)
report({{"first": times[0], "median": statistics.median(times[1:] or times),
        "sort": statistics.median(sort_times), "total": table.total}})
import ipywidgets
for widget in list(ipywidgets.Widget.widgets.values()):  # workload (c) measures charts alone
    if isinstance(widget, nbtrack.widgets.table.RunTable):
        widget.close()
"""

CURVES = """
times = []
for _ in range({repeats}):
    started = time.perf_counter()
    curves = nbtrack.metric_curves("{run_id}")
    display(curves)
    times.append(time.perf_counter() - started)
report({{"first": times[0], "median": statistics.median(times[1:] or times),
        "points": curves.summary, "sent": sum(s["n"] for s in curves.series)}})
"""

# The same loop twice: ~0.1 ms of numpy per step (a tiny model's forward pass) and a
# log_metric. With a chart: in a %%track cell, where the card and its live curves show
# up while the loop runs. Without: in a plain run, where nothing watches the buffer.
LOOP = """
rng = np.random.default_rng(0)
w = rng.normal(size=(64, 64)) * 0.1
x = rng.normal(size=(64, 64))
started, cpu = time.perf_counter(), time.thread_time()
for step in range({steps}):
    x = np.tanh(x @ w + 0.01)
    nbtrack.log_metric("loss", float(x[0, 0]), step=step)
loop_seconds, loop_cpu = time.perf_counter() - started, time.thread_time() - cpu
"""


def bench_table(kernel: Kernel, repeats: int) -> dict[str, Any]:
    return kernel.result(TABLE.format(repeats=repeats))


def bench_curves(kernel: Kernel, run_id: str, repeats: int) -> dict[str, Any]:
    return kernel.result(CURVES.format(run_id=run_id, repeats=repeats))


def bench_live(kernel: Kernel, pairs: int) -> dict[str, Any]:
    loop = LOOP.format(steps=LOOP_STEPS)
    with_chart, without, updates = [], [], []
    watcher, watcher_cpu, loop_cpu = [], [], {"with": [], "without": []}
    plain_code = (
        "with nbtrack.start_run(run_name='plain'):\n"
        + "\n".join("    " + line for line in loop.strip().splitlines())
        + "\nreport([loop_seconds, loop_cpu])"
    )
    for i in range(pairs + 1):  # the first pair warms up
        if i % 2:  # alternate which goes first, so drift in the machine's load cancels
            plain_loop, plain_cpu = kernel.result(plain_code)
        kernel.run("from nbtrack.widgets import live\nlive.stats.update(ticks=0, seconds=0, cpu=0)")
        _, messages = kernel.run(f"%%track --name live-{i}\n{loop}")
        chart_loop, chart_cpu = kernel.result("report([loop_seconds, loop_cpu])")
        spent = kernel.result("report(live.stats)")
        if not i % 2:
            plain_loop, plain_cpu = kernel.result(plain_code)
        # Updates the live chart received while the cell ran: each carries its points
        # as a binary buffer (ipywidgets lists it in buffer_paths, not in the state).
        sent = sum(
            1
            for m in messages
            if m["msg_type"] == "comm_msg"
            and ["columns"] in m["content"]["data"].get("buffer_paths", [])
        )
        if i:
            with_chart.append(chart_loop)
            without.append(plain_loop)
            updates.append(sent)
            watcher.append(spent["seconds"] / chart_loop)
            watcher_cpu.append(spent["cpu"] / chart_loop)
            loop_cpu["with"].append(chart_cpu)
            loop_cpu["without"].append(plain_cpu)
    return {
        "with": statistics.median(with_chart),
        "without": statistics.median(without),
        "updates": statistics.median(updates),
        "watcher": statistics.median(watcher),
        "watcher_cpu": statistics.median(watcher_cpu),
        "loop_cpu": statistics.median(loop_cpu["with"]) / statistics.median(loop_cpu["without"]),
        "ratio": statistics.median(w / o for w, o in zip(with_chart, without, strict=True)),
        "pairs": list(zip(with_chart, without, strict=True)),
    }


# The card as it was before the panels: static HTML and text, nothing watching the run.
STATIC_CARD = """
import nbtrack.widgets.card as _card
from nbtrack.render import run_card_html as _html, run_card_text as _text
_widget_card = (_card.show_run_card, _card.watch_run)
_static_card = (
    lambda row: display({"text/html": _html(row), "text/plain": _text(row)}, raw=True),
    lambda run_id: None,
)
"""


def bench_card(kernel: Kernel, cells: int) -> dict[str, Any]:
    kernel.run(STATIC_CARD)
    use = {
        "widget": "_card.show_run_card, _card.watch_run = _widget_card",
        "static": "_card.show_run_card, _card.watch_run = _static_card",
    }
    times: dict[str, list[float]] = {"widget": [], "static": [], "plain": []}
    for i in range(cells + 3):  # the first three warm up
        for kind in ("widget", "static"):
            kernel.run(use[kind])
            tracked = kernel.run("%%track\npass")[0]
            plain = kernel.run("pass")[0]
            if i >= 3:
                times[kind].append(tracked)
                times["plain"].append(plain)
    kernel.run(use["widget"])
    return {kind: statistics.median(values) for kind, values in times.items()}


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    repeats, pairs, cells = (3, 4, 15) if args.quick else (7, 16, 40)

    workdir = Path(tempfile.mkdtemp(prefix="nbtrack-bench-panels-"))
    started = time.time()
    try:
        print(f"building a store of {RUNS:,} runs and one of {POINTS:,} points ...", flush=True)
        run_id = build_store(workdir / ".nbtrack")
        kernel = Kernel(workdir)
        try:
            kernel.run(SETUP)
            table = bench_table(kernel, repeats)
            curves = bench_curves(kernel, run_id, repeats)
            loop = bench_live(kernel, pairs)
            card = bench_card(kernel, cells)
        finally:
            kernel.close()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    slower = loop["with"] / loop["without"] - 1
    card_cost = card["widget"] - card["plain"]
    n = f"{POINTS:,}"
    rows = [
        ("a", f"RunTable over {table['total']:,} runs, first render (fresh kernel)",
         fmt(table["first"]), "<= 500 ms", table["first"] <= 0.5),
        ("a", "RunTable, median of the next renders", fmt(table["median"]), "", None),
        ("a", "RunTable, sort by a column (intent to new page)", fmt(table["sort"]), "", None),
        ("b", f"MetricCurves over {n} points, first (vl-convert starts)",
         fmt(curves["first"]), "", None),
        ("b", "MetricCurves, median of the next", fmt(curves["median"]), "<= 1 s",
         curves["median"] <= 1.0),
        ("b", "points sent to the page", f"{curves['sent']:,}", "", None),
        ("c", f"{LOOP_STEPS:,}-step loop with a live chart open", fmt(loop["with"]), "", None),
        ("c", "the same loop without a chart", fmt(loop["without"]), "", None),
        ("c", "slower with the live chart, median of per-pair ratios",
         f"{loop['ratio'] - 1:+.1%}", "<= 5%", loop["ratio"] - 1 <= 0.05),
        ("c", "the same, ratio of medians", f"{slower:+.1%}", "", None),
        ("c", "live chart updates during the loop", f"{loop['updates']:.0f}", "", None),
        ("c", "watcher thread's time / loop time", f"{loop['watcher']:.1%}", "<= 5%",
         loop["watcher"] <= 0.05),
        ("c", "the same in the watcher thread's CPU time", f"{loop['watcher_cpu']:.1%}", "", None),
        ("c", "the loop thread's CPU time, with / without", f"{loop['loop_cpu'] - 1:+.1%}",
         "", None),
        ("d", "empty %%track cell (run card widget), client wall", fmt(card["widget"]), "", None),
        ("d", "untracked cell, client wall", fmt(card["plain"]), "", None),
        ("d", "%%track cell minus untracked", fmt(card_cost), "", None),
        ("d", "the same with the static card of before",
         fmt(card["static"] - card["plain"]), "", None),
        ("d", "what the card widget adds", fmt(card["widget"] - card["static"]), "", None),
    ]  # fmt: skip
    print()
    print(
        f"nbtrack panels - Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} cpus; {time.time() - started:.0f} s "
        f"({'quick' if args.quick else 'full'} run, {time.strftime('%Y-%m-%d')})"
    )
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    header = ["", "measurement", "median", "target"]
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  result"
    print(line)
    print("  ".join("-" * w for w in widths) + "  ------")
    for row in rows:
        verdict = {True: "PASS", False: "FAIL", None: ""}[row[4]]
        cells_ = [str(c).ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        print("  ".join(cells_) + "  " + verdict)
    judged = [r[4] for r in rows if r[4] is not None]
    print(f"\ntargets: {judged.count(True)} PASS, {judged.count(False)} FAIL")
    print(
        f"loop pairs (with, without), s: {[tuple(round(v, 3) for v in p) for p in loop['pairs']]}"
    )


if __name__ == "__main__":
    sys.exit(main())
