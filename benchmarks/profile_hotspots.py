"""Where nbtrack's time goes in the benchmark workloads: cProfile reports, one per workload.

    .venv/bin/python benchmarks/profile_hotspots.py search [--runs 10000]   # (c)
    .venv/bin/python benchmarks/profile_hotspots.py metrics [--points 1000000]  # (d)
    .venv/bin/python benchmarks/profile_hotspots.py runs [--runs 500]       # (b)
    .venv/bin/python benchmarks/profile_hotspots.py cell [--runs 10000]     # (f), in a kernel

Each prints wall-clock splits first (unprofiled), then the top functions. ``metrics``
moves the background flushing into the main thread (cProfile sees one thread only) and
counts garbage collections, which the per-point tuples in the buffer trigger.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import gc
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from time import perf_counter

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import FILTER, child, clean_env, run_data


def report(profile: cProfile.Profile, sort: str, limit: int) -> None:
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats(sort).print_stats(limit)
    print("\n".join(line for line in stream.getvalue().splitlines() if line.strip()))


def build_store(store: Path, runs: int) -> None:
    started = perf_counter()
    child("build-store", str(store), str(runs))
    print(f"built a {runs:,}-run store in {perf_counter() - started:.1f} s")


def profile_search(args: argparse.Namespace, root: Path) -> None:
    import nbtrack
    from nbtrack.tracking import fluent
    from nbtrack.tracking.frames import runs_dataframe

    store = root / "store"
    build_store(store, args.runs)
    nbtrack.set_tracking_uri(store)

    def search():
        return nbtrack.search_runs(experiment_ids=["0"], filter_string=FILTER)

    search()  # warm: loads the catalog, imports pandas
    splits = defaultdict(list)
    for _ in range(7):
        t0 = perf_counter()
        rows = fluent.search_rows(["0"], FILTER)
        t1 = perf_counter()
        runs_dataframe(rows)
        t2 = perf_counter()
        splits["search_rows (filter + order)"].append(t1 - t0)
        splits["runs_dataframe (DataFrame)"].append(t2 - t1)
    for name, times in splits.items():
        print(f"{name:32s} median {sorted(times)[3] * 1e3:7.1f} ms")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(5):
        search()
    profile.disable()
    report(profile, args.sort, args.limit)


def profile_metrics(args: argparse.Namespace, root: Path) -> None:
    import nbtrack
    from nbtrack.store import writer

    n = args.points
    values = [((i * 7919) % 1000) / 997 for i in range(1024)]
    collections: dict[int, list[float]] = defaultdict(lambda: [0, 0.0])
    started: list[float] = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = perf_counter()
        else:
            entry = collections[info["generation"]]
            entry[0] += 1
            entry[1] += perf_counter() - started[0]

    for label, background in (("as shipped (background flusher)", True), ("flush in main", False)):
        if not background:  # everything in the main thread, where cProfile can see it
            writer.FLUSH_AT_POINTS, writer.FLUSH_INTERVAL_SECONDS = 10**12, 1e12
        nbtrack.set_tracking_uri(root / f"store-{background}")
        nbtrack.set_experiment("bench")
        run = nbtrack.start_run()
        log = nbtrack.log_metric
        collections.clear()
        gc.callbacks.append(on_gc)
        t0 = perf_counter()
        for i in range(n):
            log("loss", values[i & 1023], step=i)
        t1 = perf_counter()
        profile = cProfile.Profile()
        if not background:
            profile.enable()
        nbtrack.flush()
        profile.disable()
        t2 = perf_counter()
        gc.callbacks.remove(on_gc)
        print(f"\n== {label}: {n:,} x log_metric {t1 - t0:.2f} s, flush {t2 - t1:.2f} s")
        for generation, (count, seconds) in sorted(collections.items()):
            print(f"   gc generation {generation}: {count} collections, {seconds:.2f} s")
        if not background:
            report(profile, "tottime", args.limit)
        read = cProfile.Profile()
        t3 = perf_counter()
        read.enable()
        history = nbtrack.get_metric_history(run.run_id, "loss")
        read.disable()
        t4 = perf_counter()
        print(f"== get_metric_history: {len(history):,} points in {t4 - t3:.2f} s")
        if not background:
            report(read, "tottime", 10)
        nbtrack.end_run()


def profile_runs(args: argparse.Namespace, root: Path) -> None:
    import nbtrack

    nbtrack.set_tracking_uri(root / "store")
    nbtrack.set_experiment("bench")

    def make(i: int) -> None:
        params, metrics, tags = run_data(i)
        with nbtrack.start_run(run_name=f"run-{i}"):
            nbtrack.log_params(params)
            nbtrack.log_metrics(metrics)
            nbtrack.set_tags(tags)

    for i in range(100):
        make(i)
    t0 = perf_counter()
    for i in range(100, 100 + args.runs):
        make(i)
    print(f"unprofiled: {(perf_counter() - t0) / args.runs * 1e3:.2f} ms per run")
    profile = cProfile.Profile()
    profile.enable()
    for i in range(100 + args.runs, 100 + 2 * args.runs):
        make(i)
    profile.disable()
    report(profile, args.sort, args.limit)


KERNEL_SETUP = """
import cProfile, io, pstats
_nbp = cProfile.Profile()
_nbp_on = [False]
def _nbp_pre(info):
    if _nbp_on[0] and info.raw_cell.startswith('%%track'):
        _nbp.enable()
get_ipython().events.register('pre_run_cell', _nbp_pre)
"""
KERNEL_POST = """
def _nbp_post(result):
    _nbp.disable()
get_ipython().events.register('post_run_cell', _nbp_post)
"""


def profile_cell(args: argparse.Namespace, root: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    cwd = root / "kernel"
    cwd.mkdir()
    build_store(cwd / ".nbtrack", args.runs)
    os.sync()
    km, kc = start_new_kernel(
        kernel_name="python3",
        cwd=str(cwd),
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    outputs: list[dict] = []

    def run(code: str) -> None:
        reply = kc.execute_interactive(code, timeout=120, output_hook=outputs.append)
        assert reply["content"]["status"] == "ok", reply["content"]

    try:
        run(KERNEL_SETUP)
        run("%load_ext nbtrack")
        run(KERNEL_POST)
        for _ in range(5):
            run("%%track\npass")
            run("pass")
        run("_nbp_on[0] = True")
        for _ in range(40):
            run("%%track\npass")
            run("pass")
        run("_nbp_on[0] = False")
        outputs.clear()
        run(
            "_s = io.StringIO(); pstats.Stats(_nbp, stream=_s)"
            f".sort_stats({args.sort!r}).print_stats({args.limit}); print(_s.getvalue())"
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    text = "".join(o["content"].get("text", "") for o in outputs if o["msg_type"] == "stream")
    print("40 `%%track\\npass` cells, profiled inside the kernel (pre to post_run_cell):")
    print("\n".join(line for line in text.splitlines() if line.strip()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=["search", "metrics", "runs", "cell"])
    parser.add_argument("--runs", type=int, help="store size (search, cell) or runs to profile")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--sort", default="cumtime", help="pstats sort key")
    parser.add_argument("--limit", type=int, default=25, help="functions to show")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 500 if args.workload == "runs" else 10_000
    root = Path(tempfile.mkdtemp(prefix="nbtrack-profile-"))
    # Before nbtrack is imported, so it runs after nbtrack's exit hook closed the stores.
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    {
        "search": profile_search,
        "metrics": profile_metrics,
        "runs": profile_runs,
        "cell": profile_cell,
    }[args.workload](args, root)


if __name__ == "__main__":
    main()
