"""Real MLflow on an nbtrack store (the plugin) beside MLflow's sqlite and file stores and the
floor, in one run, through the same ``mlflow.*`` calls.

Backends (tracking URIs):

    floor    ``memory:``: a store that keeps everything in dicts (memory_store.py), registered
             at run time; what MLflow's own layers cost
    nbtrack  ``nbtrack:///<tmp>/store``
    sqlite   ``sqlite:///<tmp>/mlflow.db``
    file     ``file:///<tmp>/mlruns``

Workloads (see benchmarks/README.md):

    a  ``mlflow.log_metric`` per call inside a run
    b  a run: ``start_run``, ``log_params`` (10), ``log_metrics`` (5), ``set_tags`` (2), end
    c  ``mlflow.search_runs`` (the DataFrame) over 1,000 and 10,000 runs
    d  one run's 100,000-point history: written by ``MlflowClient.log_batch`` in chunks of
       1,000 and the run ended, then read by ``MlflowClient.get_metric_history``

Usage::

    .venv/bin/python benchmarks/bench_plugin.py            # full run (~25 min on 2 cores)
    .venv/bin/python benchmarks/bench_plugin.py --quick    # smaller sizes, a few minutes
    .venv/bin/python benchmarks/bench_plugin.py --only a,b

Not a test: it prints medians, ratios and PASS/FAIL against the issue's targets (at least
10x faster than sqlite and faster than the file store on every workload; within 1.5x of the
floor per call and per run), and exits 0 either way.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from time import perf_counter, perf_counter_ns
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BACKENDS = ("floor", "nbtrack", "sqlite", "file")
SLOW = ("sqlite", "file")

FULL = {
    "a_calls": 500,  # log_metric calls per round, each timed (slow backends: a_slow)
    "a_slow": 60,
    "b_runs": 100,  # runs per round, each timed (slow backends: b_slow)
    "b_slow": 15,
    "rounds": 8,  # backends interleaved, round after round: load changes hit all alike
    "c_sizes": (1_000, 10_000),
    "c_slow_cap": 2_000,  # with --extrapolate: sqlite and file grown this far (see searches)
    "c_repeats": 5,
    "c_slow_repeats": 2,
    "d_points": 100_000,
}
QUICK = {
    **FULL,
    "a_calls": 300,
    "a_slow": 40,
    "b_runs": 60,
    "b_slow": 10,
    "rounds": 3,
    "c_sizes": (300, 1_000),
    "c_slow_cap": 600,
    "c_repeats": 3,
    "d_points": 20_000,
}
SEARCHES = {"frame": "mlflow.search_runs", "entities": "MlflowClient.search_runs"}
TITLES = {
    "a": "mlflow.log_metric per call",
    "b": "a run: 10 params, 5 metrics, 2 tags",
    "c": "mlflow.search_runs (DataFrame) and MlflowClient.search_runs (entities)",
    "d": "100,000-point history",
}


# -- setup -------------------------------------------------------------------------------------


def quiet() -> None:
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 keeps it in maintenance mode
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def register_backends() -> None:
    """The floor's ``memory:`` scheme; nbtrack's, if its entry points are not installed yet
    (a checkout whose editable install predates them)."""
    from mlflow.store.artifact.artifact_repository_registry import (
        _artifact_repository_registry as artifact_registry,
    )
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    import memory_store

    memory_store.register()
    if "nbtrack" not in _tracking_store_registry._registry:
        from nbtrack.mlflow_plugin.artifact_repo import (
            NbtrackArtifactRepository,
            NbtrackRunsArtifactRepository,
        )
        from nbtrack.mlflow_plugin.tracking_store import NbtrackTrackingStore

        _tracking_store_registry.register("nbtrack", NbtrackTrackingStore)
        artifact_registry.register("nbtrack-artifacts", NbtrackArtifactRepository)
        artifact_registry.register("runs", NbtrackRunsArtifactRepository)
        print("(nbtrack's entry points are not installed: registered here)")


def uri(backend: str, root: Path, name: str) -> str:
    folder = root / backend / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    return {
        "floor": f"memory:{name}",
        "nbtrack": f"nbtrack://{folder}",
        "sqlite": f"sqlite:///{folder}.db",
        "file": f"file://{folder}",
    }[backend]


def use(tracking_uri: str) -> None:
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(tracking_uri)


def median(values: list[float]) -> float:
    return statistics.median(values)


def bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, mininterval=0.5)


# -- workloads ----------------------------------------------------------------------------------


def per_call(root: Path, sizes: dict) -> dict[str, float]:
    """a: the median of single ``mlflow.log_metric`` calls, backends interleaved by round."""
    import mlflow

    timings: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for round_ in range(sizes["rounds"]):
        for backend in BACKENDS:
            use(uri(backend, root, f"a{round_}"))
            calls = sizes["a_slow"] if backend in SLOW else sizes["a_calls"]
            with mlflow.start_run():
                for step in range(20):  # warm-up
                    mlflow.log_metric("x", float(step), step=step)
                gc.collect()
                for step in range(calls):
                    start = perf_counter_ns()
                    mlflow.log_metric("x", float(step), step=step)
                    timings[backend].append((perf_counter_ns() - start) / 1e9)
    return {b: median(t) for b, t in timings.items()}


PARAMS = {f"param_{i}": str(i * 7) for i in range(10)}
METRICS = {f"metric_{i}": i / 10 for i in range(5)}
TAGS = {"team": "risk", "stage": "dev"}


def per_run(root: Path, sizes: dict) -> dict[str, float]:
    """b: the median wall time of a whole run, backends interleaved by round."""
    import mlflow

    timings: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for round_ in range(sizes["rounds"]):
        for backend in BACKENDS:
            use(uri(backend, root, f"b{round_}"))
            runs = sizes["b_slow"] if backend in SLOW else sizes["b_runs"]
            for index in range(runs + 5):
                start = perf_counter()
                with mlflow.start_run():
                    mlflow.log_params(PARAMS)
                    mlflow.log_metrics(METRICS)
                    mlflow.set_tags(TAGS)
                if index >= 5:  # the first runs warm caches up
                    timings[backend].append(perf_counter() - start)
    return {b: median(t) for b, t in timings.items()}


def searches(root: Path, sizes: dict, extrapolate: bool) -> dict[tuple[str, int], dict]:
    """c: each backend's experiment grown to each size, then ``mlflow.search_runs`` (the
    DataFrame) and ``MlflowClient.search_runs`` (every page of Run entities) timed: a warm-up
    call, then the median of repeats. With ``extrapolate``, the sqlite and file stores grow
    only to ``c_slow_cap`` runs, and larger sizes are extrapolated linearly (marked ~)."""
    results: dict[tuple[str, int], dict] = {}
    grown = dict.fromkeys(BACKENDS, 0)
    experiments: dict[str, str] = {}
    measured: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for size in sizes["c_sizes"]:
        for backend in BACKENDS:
            target = size
            if extrapolate and backend in SLOW:
                target = min(size, sizes["c_slow_cap"])
                if grown[backend] >= target:
                    continue
            use(uri(backend, root, "c"))
            experiment_id = _grow(backend, experiments, grown[backend], target)
            grown[backend] = target
            for kind, found in _time_searches(experiment_id, target, backend, sizes).items():
                measured.setdefault(kind, {}).setdefault(backend, []).append((target, found))
    for kind, by_backend in measured.items():
        for size in sizes["c_sizes"]:
            row = results.setdefault((kind, size), {"~": set()})
            for backend, points in by_backend.items():
                exact = dict(points)
                if size in exact:
                    row[backend] = exact[size]
                else:
                    row[backend] = _linear(points, size)
                    row["~"].add(backend)
    return results


def _grow(backend: str, experiments: dict[str, str], have: int, want: int) -> str:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient()
    if backend not in experiments:
        experiments[backend] = client.create_experiment("search")
    experiment_id = experiments[backend]
    with bar(want - have, f"c: {backend} store to {want:,} runs") as progress:
        for index in range(have, want):
            run_id = client.create_run(experiment_id, run_name=f"run{index}").info.run_id
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, v + index, now, 0) for k, v in METRICS.items()],
                params=[Param(k, f"{v}-{index % 3}") for k, v in PARAMS.items()],
                tags=[RunTag(k, v) for k, v in TAGS.items()],
            )
            client.set_terminated(run_id)
            progress.update()
    return experiment_id


def _time_searches(experiment_id: str, size: int, backend: str, sizes: dict) -> dict:
    import mlflow
    from mlflow import MlflowClient

    def frame() -> int:
        return len(mlflow.search_runs(experiment_ids=[experiment_id]))

    def entities() -> int:
        client, found, token = MlflowClient(), 0, None
        while True:
            page = client.search_runs([experiment_id], max_results=1000, page_token=token)
            found, token = found + len(page), page.token
            if not token:
                return found

    repeats = sizes["c_slow_repeats"] if backend in SLOW else sizes["c_repeats"]
    timed = {}
    for kind, search in (("frame", frame), ("entities", entities)):
        assert search() == size, (backend, kind)  # and a warm-up
        timings = []
        for _ in range(repeats):
            gc.collect()
            start = perf_counter()
            search()
            timings.append(perf_counter() - start)
        timed[kind] = median(timings)
    return timed


def _linear(points: list[tuple[int, float]], size: int) -> float:
    (x0, y0), (x1, y1) = points[-2], points[-1]
    return y1 + (y1 - y0) / (x1 - x0) * (size - x1)


def history(root: Path, sizes: dict) -> dict[str, dict[str, float]]:
    """d: one run's points written with ``log_batch`` (chunks of 1,000) and the run ended
    (durable in every store then), then read back with ``get_metric_history``."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    points = sizes["d_points"]
    results: dict[str, dict[str, float]] = {"write": {}, "read": {}}
    for backend in BACKENDS:
        use(uri(backend, root, "d"))
        client = MlflowClient()
        run_id = client.create_run("0").info.run_id
        now = int(time.time() * 1000)
        chunks = [
            [Metric("loss", 1.0 / (step + 1), now + step, step) for step in range(i, i + 1000)]
            for i in range(0, points, 1000)
        ]
        gc.collect()
        start = perf_counter()
        for chunk in chunks:
            client.log_batch(run_id, metrics=chunk)
        client.set_terminated(run_id)
        results["write"][backend] = perf_counter() - start
        gc.collect()
        start = perf_counter()
        read = client.get_metric_history(run_id, "loss")
        results["read"][backend] = perf_counter() - start
        assert len(read) == points, (backend, len(read))
    return results


# -- the table -------------------------------------------------------------------------------


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds:,.2f} s"


def judge(row: dict[str, float], floor_target: bool) -> str:
    """The issue's targets: >= 10x faster than sqlite, faster than file; within 1.5x of the
    floor where ``floor_target`` (per call and per run)."""
    checks = [row["sqlite"] / row["nbtrack"] >= 10, row["file"] / row["nbtrack"] > 1]
    if floor_target:
        checks.append(row["nbtrack"] / row["floor"] <= 1.5)
    return "PASS" if all(checks) else "FAIL"


def table(rows: list[tuple[str, str, dict[str, Any], bool]]) -> str:
    headers = ["", "measurement (median)", *BACKENDS, "nbtrack/floor", "sqlite/nb", "file/nb", ""]
    lines = [
        [
            key,
            what,
            *("~" * (b in row.get("~", ())) + fmt(row[b]) for b in BACKENDS),
            f"{row['nbtrack'] / row['floor']:.2f}x",
            f"{row['sqlite'] / row['nbtrack']:,.1f}x",
            f"{row['file'] / row['nbtrack']:,.1f}x",
            judge(row, floor_target),
        ]
        for key, what, row, floor_target in rows
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *lines, strict=True)]
    left = {0, 1}

    def render(cells: list[str]) -> str:
        parts = [
            str(c).ljust(w) if i in left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(headers), rule, *(render(line) for line in lines), rule])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    parser.add_argument("--only", default="a,b,c,d", help="workloads, e.g. a,b")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--extrapolate",
        action="store_true",
        help="grow the sqlite and file stores only to c_slow_cap runs; extrapolate beyond",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    chosen = set(args.only.split(","))
    quiet()
    import mlflow

    register_backends()
    root = Path(tempfile.mkdtemp(prefix="nbtrack-bench-plugin-"))
    os.chdir(root)
    started = perf_counter()
    rows: list[tuple[str, str, dict[str, float], bool]] = []
    steps: dict[str, Callable[[], Any]] = {
        "a": lambda: rows.append(("a", TITLES["a"], per_call(root, sizes), True)),
        "b": lambda: rows.append(("b", TITLES["b"], per_run(root, sizes), True)),
        "c": lambda: rows.extend(
            ("c", f"{SEARCHES[kind]} over {size:,} runs", found, False)
            for (kind, size), found in searches(root, sizes, args.extrapolate).items()
        ),
        "d": lambda: rows.extend(
            ("d", f"{sizes['d_points']:,} points: {part}", found, False)
            for part, found in history(root, sizes).items()
        ),
    }
    try:
        for key in "abcd":
            if key in chosen:
                print(f"{key}: {TITLES[key]}...", file=sys.stderr)
                steps[key]()
    finally:
        use("memory:done")
        if not args.keep:
            os.chdir(HERE)
            shutil.rmtree(root, ignore_errors=True)
    cpus = os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"nbtrack's MLflow plugin beside MLflow {mlflow.__version__} stores - "
        f"{'quick' if args.quick else 'full'} run; Python {platform.python_version()}, "
        f"{platform.machine()}, {cpus} cpus, load average {load}; {perf_counter() - started:.0f} s"
    )
    print(table(rows))
    print(
        "Targets: >= 10x faster than sqlite and faster than file on every workload; within "
        "1.5x of the floor per call (a) and per run (b)."
    )


if __name__ == "__main__":
    main()
