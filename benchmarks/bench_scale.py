"""nbtrack on a store that has grown to 100,000 runs, beside MLflow (sqlite) where it can go.

Workloads (see benchmarks/README.md, "Scale"):

    s  build a 100,000-run store (10 params, 5 metrics, 2 tags each): journals written with
       the Store's record functions in a child process, then the catalog once; MLflow: 500
       and 1,000 runs (MlflowClient.log_batch)
    a  a fresh process's first search_runs (a DataFrame of half the runs), and its wall time
    b  a warm search_runs in the same process (and a top-100 one)
    c  a real kernel (jupyter_client) whose cwd holds the store: %load_ext, then the first
       %%track cell
    d  a new kernel's first %track runs (runs_table() + display)
    e  writing runs with the fluent API into a store of 1,000 and of 100,000 runs; folding the
       change log into a new snapshot at each size (run before a-d, which then see a store
       with a change log, as one in use has)

Usage::

    .venv/bin/python benchmarks/bench_scale.py            # full run, ~8 min on 2 cores
    .venv/bin/python benchmarks/bench_scale.py --quick    # 20,000 runs, ~3 min
    .venv/bin/python benchmarks/bench_scale.py --json out.json --keep

Not a test: prints medians, ratios and PASS/FAIL against the targets of issue 10, and exits
0 even when a target fails (``--strict`` exits 1 then).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from time import perf_counter
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))

import bench_core as core  # noqa: E402  (the table, the run data, the kernel timer)
from bench_core import FILTER, Results, Row, median, run_data  # noqa: E402

FULL = {
    "runs": 100_000,
    "small": 1_000,
    "ml_sizes": (500, 1_000),
    "processes": 5,  # fresh processes for the first search (after a warm-up one)
    "warm": 10,
    "kernels": 3,
    "writes": 4_500,  # fluent runs written into each store (the log folds every ~2,000)
    "ml_writes": 100,
}
QUICK = {
    **FULL,
    "runs": 20_000,
    "ml_sizes": (200, 400),
    "processes": 3,
    "warm": 5,
    "kernels": 2,
    "writes": 1_500,
    "ml_writes": 30,
}
TOP_100 = {"order_by": ["metrics.m1 DESC"], "max_results": 100}
SYSTEM_TAGS = {"mlflow.user": "bench", "mlflow.source.type": "LOCAL"}


# -- children: each prints "@result {json}" (and "@progress N") ----------------------------------


def child(mode: str, *args: str, progress=None, timeout: float = 3600) -> dict[str, Any]:
    """Run ``bench_scale.py --child MODE ARGS`` in a fresh interpreter; return its result and
    its wall time (``wall``, from start to exit)."""
    cmd = [sys.executable, str(HERE), "--child", mode, *args]
    with tempfile.TemporaryFile("w+") as err:
        started = perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env())
        result = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("@progress ") and progress is not None:
                progress.update(int(line.split()[1]))
            elif line.startswith("@result "):
                result = json.loads(line[len("@result ") :])
        code = proc.wait(timeout=timeout)
        wall = perf_counter() - started
        if code != 0 or result is None:
            err.seek(0)
            raise RuntimeError(f"child {mode} failed (exit {code}):\n{err.read()[-4000:]}")
    return {**result, "wall": wall}


def child_build(store: str, want: str) -> None:
    """A store of ``want`` runs, quickly: each run's journal gets the records the Store
    API writes for a run with 10 params, 5 metrics and 2 tags (create, params, metrics,
    tags, FINISHED; built with the same record functions), without the per-run fsync of
    the live path; then the catalog is written once from the rows those journals fold
    to, which is what ``nbtrack doctor --rebuild`` would write."""
    import uuid

    from nbtrack.store import Store
    from nbtrack.store.journal import Journal
    from nbtrack.store.procs import current_process
    from nbtrack.store.records import metric_records, to_patch
    from nbtrack.store.rows import apply_patch

    started = perf_counter()
    with Store(Path(store)) as opened, open(opened.created_log, "ab") as created:
        rows, process, reported = {}, current_process(), 0
        for i in range(int(want)):
            params, metrics, tags = run_data(i)
            run_id, name, now = uuid.uuid4().hex, f"run-{i}", int(time.time() * 1000)
            created.write(f"{run_id} {now}\n".encode())
            opened.run_dir(run_id).mkdir()
            system = {**SYSTEM_TAGS, "mlflow.runName": name, "mlflow.source.name": HERE.name}
            run = {
                "run_id": run_id,
                "experiment_id": "0",
                "run_name": name,
                "status": "RUNNING",
                "start_time": now,
                "end_time": None,
                "lifecycle_stage": "active",
                "user_id": "bench",
                "tags": system,
                "process": process,
            }
            points = [item for k, v in metrics.items() for item in (k, v, 0, now)]
            records = [
                {"op": "create", "run": run},
                {"op": "params", "params": params},
                *metric_records(points),
                {"op": "tags", "tags": tags},
                {"op": "set", "fields": {"status": "FINISHED", "end_time": now + 1}},
            ]
            with Journal(opened.journal_path(run_id)) as journal:
                journal.append_many(records)
            row: dict[str, Any] = {"artifact_uri": opened.artifact_uri(run_id)}
            for record in records:
                apply_patch(row, to_patch(record))
            rows[run_id] = row
            if (i + 1) % 1000 == 0:
                print(f"@progress {i + 1 - reported}", flush=True)
                reported = i + 1
        created.flush()
        tables = opened.catalog.read() or {}
        tables["runs"] = {**tables.get("runs", {}), **rows}
        tables["_meta"] = {"1": {"created_offset": created.tell()}}
        opened.catalog.write(tables)
    core.emit_result({"seconds": perf_counter() - started})


def child_search(store: str, warm: str) -> None:
    """A fresh process: the first search_runs (nbtrack and pandas imported before), then
    warm ones, then a warm top-100."""
    t0 = perf_counter()
    import pandas  # noqa: F401

    import nbtrack

    imported = perf_counter() - t0
    nbtrack.set_tracking_uri(store)
    t0, c0 = perf_counter(), time.process_time()
    frame = nbtrack.search_runs(experiment_ids=["0"], filter_string=FILTER)
    first, first_cpu = perf_counter() - t0, time.process_time() - c0
    warm_times, warm_cpu = [], []
    for _ in range(int(warm)):
        t0, c0 = perf_counter(), time.process_time()
        frame = nbtrack.search_runs(experiment_ids=["0"], filter_string=FILTER)
        warm_times.append(perf_counter() - t0)
        warm_cpu.append(time.process_time() - c0)
    top = []
    for _ in range(int(warm)):
        t0 = perf_counter()
        best = nbtrack.search_runs(experiment_ids=["0"], filter_string=FILTER, **TOP_100)
        top.append(perf_counter() - t0)
    assert len(best) == 100
    from nbtrack.tracking.fluent import current_store

    core.emit_result(
        {
            "imports": imported,
            "first": first,
            "first_cpu": first_cpu,
            "warm": median(warm_times),
            "warm_cpu": median(warm_cpu),
            "top100": median(top),
            "rows": len(frame),
            "runs": len(current_store().run_columns()),
        }
    )


def child_mlflow_search(db: str, warm: str) -> None:
    core.quiet_mlflow()
    t0 = perf_counter()
    import mlflow
    import pandas  # noqa: F401

    core.quiet_mlflow()
    imported = perf_counter() - t0
    mlflow.set_tracking_uri(core.sqlite_uri(Path(db)))
    experiment = mlflow.get_experiment_by_name("bench").experiment_id
    t0 = perf_counter()
    frame = mlflow.search_runs([experiment], filter_string=FILTER)
    first = perf_counter() - t0
    warm_times, top = [], []
    for _ in range(int(warm)):
        t0 = perf_counter()
        frame = mlflow.search_runs([experiment], filter_string=FILTER)
        warm_times.append(perf_counter() - t0)
    for _ in range(int(warm)):
        t0 = perf_counter()
        mlflow.search_runs([experiment], filter_string=FILTER, **TOP_100)
        top.append(perf_counter() - t0)
    core.emit_result(
        {
            "imports": imported,
            "first": first,
            "warm": median(warm_times),
            "top100": median(top),
            "rows": len(frame),
        }
    )


def child_write(store: str, count: str, after: str = "0") -> None:
    """Runs written with the fluent API (start_run, log_params(10), log_metrics(5),
    set_tags(2), end), each timed; then the change log folded into a new snapshot, timed;
    then ``after`` more runs, untimed, so the store is left with a change log."""
    import nbtrack
    from nbtrack.tracking.fluent import current_store

    nbtrack.set_tracking_uri(store)
    nbtrack.search_experiments()  # open the store before timing
    catalog = current_store().catalog
    generation = catalog.meta().get("generation", 0)
    times = []
    started = perf_counter()
    for i in range(int(count)):
        params, metrics, tags = run_data(i)
        t0 = perf_counter()
        with nbtrack.start_run(run_name=f"write-{i}"):
            nbtrack.log_params(params)
            nbtrack.log_metrics(metrics)
            nbtrack.set_tags(tags)
        times.append(perf_counter() - t0)
    elapsed = perf_counter() - started  # not the final flush: fsyncing cost no more at 100k
    nbtrack.flush()
    folds = catalog.meta().get("generation", 0) - generation
    t0 = perf_counter()
    catalog.compact()
    fold = perf_counter() - t0
    for i in range(int(after)):
        with nbtrack.start_run(run_name=f"after-{i}"):
            nbtrack.log_params(run_data(i)[0])
    nbtrack.flush()
    core.emit_result(
        {
            "median": median(times),
            "mean": elapsed / len(times),
            "p95": core.percentile(times, 95),
            "folds": folds,
            "fold": fold,
            "runs": len(current_store().run_columns()),
        }
    )


def child_mlflow_write(db: str, count: str) -> None:
    core.quiet_mlflow()
    import mlflow

    core.quiet_mlflow()
    mlflow.set_tracking_uri(core.sqlite_uri(Path(db)))
    mlflow.set_experiment("bench")
    times = core.create_runs(mlflow, int(count) + 5, "MLflow writes")[5:]
    core.emit_result({"median": median(times), "mean": statistics.fmean(times)})


CHILDREN = {
    "build": child_build,
    "search": child_search,
    "mlflow-search": child_mlflow_search,
    "write": child_write,
    "mlflow-write": child_mlflow_write,
}


# -- kernels -----------------------------------------------------------------------------------


def env() -> dict[str, str]:
    """Children and kernels: this checkout's nbtrack, no NBTRACK_/MLFLOW_ variables."""
    return {**core.clean_env(), "PYTHONPATH": str(ROOT / "src")}


def start_kernel(cwd: Path):
    from jupyter_client.manager import start_new_kernel

    return start_new_kernel(
        kernel_name="python3",
        cwd=str(cwd),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_kernel(km, kc) -> None:
    kc.stop_channels()
    km.shutdown_kernel(now=False)  # a clean exit: its runs are committed, as a user's are


def first_tracked_cell(cwd: Path) -> dict[str, float]:
    """A fresh kernel in ``cwd`` (whose .nbtrack is the big store): %load_ext nbtrack, then
    the first %%track cell and five more, timed from the client and inside the kernel."""
    km, kc = start_kernel(cwd)
    try:
        timer = core.KernelTimer(kc)
        timer.run(core.F_PRE)
        load, _ = timer.run("%load_ext nbtrack")
        timer.run(core.F_POST)
        timer.hooked = True
        first, outputs = timer.run(core.TRACKED)
        assert any(o["msg_type"] == "display_data" for o in outputs), "no run card shown"
        for _ in range(5):
            timer.run(core.TRACKED)
        kernel = timer.kernel_times()
        timer.run("import nbtrack; nbtrack.flush()")
    finally:
        stop_kernel(km, kc)
    return {
        "load_ext": load,
        "first": first,
        "first_kernel": kernel[0],
        "next": median(timer.client[1:6]),
        "next_kernel": median(kernel[1:6]),
    }


def mlflow_first_run(cwd: Path, db: Path) -> dict[str, float]:
    """MLflow in a fresh kernel: imported and pointed at its store, then the first
    ``with mlflow.start_run(): pass`` (MLflow has no cell magic)."""
    km, kc = start_kernel(cwd)
    try:
        timer = core.KernelTimer(kc)
        timer.run(
            "import mlflow, logging\n"
            "for _n in ('mlflow', 'alembic'): logging.getLogger(_n).setLevel(logging.ERROR)\n"
            f"mlflow.set_tracking_uri({core.sqlite_uri(db)!r})\n"
            "mlflow.set_experiment('bench');"
        )
        first, _ = timer.run(core.ML_CELL)
        following = [timer.run(core.ML_CELL)[0] for _ in range(5)]
    finally:
        stop_kernel(km, kc)
    return {"first": first, "next": median(following)}


RUNS_TABLE = """
import json, time
from IPython.display import display
started = time.perf_counter()
table = nbtrack.runs_table()
display(table)
first = time.perf_counter() - started
later = []
for _ in range(3):
    started = time.perf_counter()
    display(nbtrack.runs_table())
    later.append(time.perf_counter() - started)
print("BENCH " + json.dumps({"first": first, "later": sorted(later)[1], "total": table.total}))
"""


def first_runs_table(cwd: Path) -> dict[str, float]:
    """A fresh kernel: imports and %load_ext untimed, then runs_table() + display, timed
    inside the kernel (the first reads the store from disk)."""
    km, kc = start_kernel(cwd)
    try:
        timer = core.KernelTimer(kc)
        timer.run("import pandas, ipywidgets, anywidget, altair, nbtrack.widgets.table")
        timer.run("%load_ext nbtrack")
        _, outputs = timer.run(RUNS_TABLE)
        text = "".join(o["content"].get("text", "") for o in outputs if o["msg_type"] == "stream")
        line = next(x for x in text.splitlines() if x.startswith("BENCH "))
        found = json.loads(line[len("BENCH ") :])
        timer.run("import nbtrack; nbtrack.flush()")
    finally:
        stop_kernel(km, kc)
    return found


# -- the run --------------------------------------------------------------------------------------


def disk_usage(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def extrapolated(size: int, measured: dict[int, float]) -> tuple[float | None, str]:
    """MLflow's time at ``size`` runs from its largest measured sizes: along the line
    through the two, or in proportion to the largest when noise makes that line fall."""
    if size in measured:
        return measured[size], ""
    low, high = sorted(measured)[-2:]
    slope = (measured[high] - measured[low]) / (high - low)
    if slope <= 0:
        return measured[high] * size / high, f"x{size / high:.0f} from {high:,}"
    return measured[high] + slope * (size - high), f"extrap. from {high:,}"


def measure(cfg: dict, ws: Path, res: Results) -> None:
    from tqdm import tqdm

    runs, small = cfg["runs"], cfg["small"]
    kernel_cwd = ws / "kernel-cwd"
    big = kernel_cwd / ".nbtrack"
    kernel_cwd.mkdir()

    # (s) the stores
    with tqdm(total=runs, desc=f"nbtrack store of {runs:,} runs", unit="run") as bar:
        built = child("build", str(big), str(runs), progress=bar)
    small_store = ws / "small"
    child("build", str(small_store), str(small))
    ml_dbs = build_mlflow(ws, cfg["ml_sizes"])
    os.sync()
    res.rows += [
        Row(
            "s",
            f"build {runs:,} runs (journals, then the catalog once)",
            built["seconds"],
            note=(
                "nbtrack: a child process writes each run's journal with the records the "
                "Store API writes (create, 10 params, 5 metrics, 2 tags, FINISHED), without "
                "the live path's per-run fsync, then the catalog once from the rows they "
                "fold to (as doctor --rebuild would); then (e) writes runs through the "
                "fluent API, so the stores measured after it have a change log. MLflow: "
                "MlflowClient create_run + log_batch + set_terminated."
            ),
        ),
    ]
    res.raw["build"] = built

    # (e) writing runs at both sizes, through the live path
    write_rows(cfg, ws, res, small_store, big, ml_dbs)
    os.sync()
    snapshot = (big / "catalog.snapshot").stat().st_size
    log = (big / "catalog.log").stat().st_size
    res.rows.append(
        Row(
            "s",
            "store on disk / catalog snapshot / change log",
            f"{disk_usage(big) / 1e6:,.0f} MB / {snapshot / 1e6:.1f} MB / {log / 1e6:.1f} MB",
            kind="text",
        )
    )

    # (a, b) searches in fresh processes
    child("search", str(big), "1")  # warm-up: page cache, .pyc files
    searches = [child("search", str(big), str(cfg["warm"])) for _ in range(cfg["processes"])]
    ml_search = {}
    for size, db in ml_dbs.items():
        child("mlflow-search", str(db), "1")
        ml_search[size] = [child("mlflow-search", str(db), str(cfg["warm"])) for _ in range(3)]

    def nb(key: str) -> float:
        return median([s[key] for s in searches])

    def ml(key: str) -> tuple[float | None, str]:
        return extrapolated(runs, {s: median([r[key] for r in v]) for s, v in ml_search.items()})

    rows_found = searches[0]["rows"]
    cap = max(ml_dbs)
    for wl, what, key, target, limit in [
        ("a", "first search_runs in a fresh process", "first", "<= 500 ms", 0.5),
        ("a", "the same, CPU time of the process", "first_cpu", "", None),
        ("a", "process wall (python -c: imports + first search)", "wall", "", None),
        ("b", "warm search_runs (DataFrame of half the runs)", "warm", "<= 150 ms", 0.15),
        ("b", "the same, CPU time of the process", "warm_cpu", "", None),
        ("b", "warm search_runs, top 100 by a metric", "top100", "", None),
    ]:
        value, note = ml(key) if key in ml_search[cap][0] else (None, "")
        res.rows.append(
            Row(
                wl,
                what,
                nb(key),
                value,
                ml_note=note,
                target=target,
                limit=limit,
                note=(
                    f"filter {FILTER!r} over the {searches[0]['runs']:,} runs of the store "
                    f"(the {runs:,} built and those (e) wrote) returns {rows_found:,} rows; median "
                    f"of {len(searches)} fresh processes (after a warm-up one), nbtrack and "
                    f"pandas imported before the timer (imports: "
                    f"{nb('imports') * 1e3:.0f} ms). MLflow measured at "
                    f"{', '.join(f'{s:,}' for s in ml_dbs)} runs and extrapolated linearly "
                    f"to {runs:,} (it took {median([r['first'] for r in ml_search[cap]]):.2f} s "
                    f"at {cap:,})."
                )
                if key == "first"
                else "",
            )
        )
    res.raw["search"] = {"nbtrack": searches, "mlflow": ml_search}

    # (c) the first %%track cell, (d) the first %track runs
    cells = [first_tracked_cell(kernel_cwd) for _ in range(cfg["kernels"])]
    ml_cells = [mlflow_first_run(kernel_cwd, ml_dbs[cap]) for _ in range(2)]
    tables = [first_runs_table(kernel_cwd) for _ in range(cfg["kernels"])]
    res.rows += [
        Row(
            "c",
            "%load_ext nbtrack (imports what tracked cells need)",
            median([c["load_ext"] for c in cells]),
        ),
        Row(
            "c",
            "first %%track cell (client wall)",
            median([c["first"] for c in cells]),
            median([c["first"] for c in ml_cells]),
            ml_note=f"start_run, {cap:,} runs",
            target="<= 150 ms",
            limit=0.15,
            note=(
                f"Median of {len(cells)} fresh kernels (jupyter_client) whose cwd holds the "
                f"{runs:,}-run store as .nbtrack: `%load_ext nbtrack`, then `%%track\\npass`. "
                "MLflow: a fresh kernel with mlflow imported and set up, then the first "
                "`with mlflow.start_run(): pass` (no cell magic)."
            ),
        ),
        Row("c", "the same, kernel side", median([c["first_kernel"] for c in cells])),
        Row(
            "c",
            "next %%track cells (client wall)",
            median([c["next"] for c in cells]),
            median([c["next"] for c in ml_cells]),
        ),
        Row(
            "d",
            "first %track runs in a new kernel (runs_table + display)",
            median([t["first"] for t in tables]),
            target="<= 500 ms",
            limit=0.5,
            note=(
                f"Kernel side, median of {len(tables)} fresh kernels; pandas, ipywidgets, "
                f"anywidget, altair and the table module imported before; the table holds "
                f"{tables[0]['total']:,} runs and sends one page."
            ),
        ),
        Row("d", "the next runs_table + display", median([t["later"] for t in tables])),
    ]
    res.raw["kernels"] = {"nbtrack": cells, "mlflow": ml_cells, "tables": tables}
    res.rows.sort(key=lambda row: "sabcde".index(row.wl))  # (e) ran first; it shows last


def write_rows(
    cfg: dict, ws: Path, res: Results, small_store: Path, big: Path, ml_dbs: dict[int, Path]
) -> None:
    """(e): fluent runs written into the small and the big store, and MLflow's."""
    runs, small = cfg["runs"], cfg["small"]
    writes = {
        small: child("write", str(small_store), str(cfg["writes"])),
        runs: child("write", str(big), str(cfg["writes"]), str(cfg["writes"] // 2)),
    }
    ml_small, ml_large = min(ml_dbs), max(ml_dbs)
    ml_writes = {
        size: child("mlflow-write", str(ml_dbs[size]), str(cfg["ml_writes"]))
        for size in (ml_small, ml_large)
    }
    ratio = writes[runs]["mean"] / writes[small]["mean"]
    res.rows += [
        Row(
            "e",
            f"write a run into {small:,} runs: median / mean",
            writes[small]["median"],
            ml_writes[ml_small]["median"],
            ml_note=f"at {ml_small:,}",
            note=(
                f"{cfg['writes']:,} runs written with the fluent API into each store (one "
                f"run = start_run + log_params(10) + log_metrics(5) + set_tags(2) + end); "
                "the mean is the whole batch's time per run, background commits and "
                f"change-log folds included ({writes[small]['folds']} and "
                f"{writes[runs]['folds']} folds happened). MLflow: {cfg['ml_writes']} "
                f"fluent runs into its {ml_small:,}- and {ml_large:,}-run stores."
            ),
        ),
        Row("e", f"the same, mean per run at {small:,}", writes[small]["mean"]),
        Row(
            "e",
            f"write a run into {runs:,} runs: median",
            writes[runs]["median"],
            ml_writes[ml_large]["median"],
            ml_note=f"at {ml_large:,}",
        ),
        Row("e", f"the same, mean per run at {runs:,}", writes[runs]["mean"]),
        Row(
            "e",
            f"mean per run: {runs:,} / {small:,}",
            ratio,
            ml_writes[ml_large]["median"] / ml_writes[ml_small]["median"],
            kind="ratio",
            target="<= 1.5x",
            limit=1.5,
        ),
        Row(
            "e",
            f"fold the change log into a snapshot of {small:,} / {runs:,} runs",
            f"{writes[small]['fold'] * 1e3:.0f} ms / {writes[runs]['fold'] * 1e3:.0f} ms",
            kind="text",
        ),
    ]
    res.raw["writes"] = {"nbtrack": writes, "mlflow": ml_writes}


def build_mlflow(ws: Path, sizes: tuple[int, ...]) -> dict[int, Path]:
    """One MLflow store grown through ``sizes``, copied at each."""
    import mlflow
    from tqdm import tqdm

    core.quiet_mlflow()
    db = ws / "mlflow-scale.db"
    uri = core.sqlite_uri(db)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment("bench").experiment_id
    copies, have = {}, 0
    for size in sorted(sizes):
        with tqdm(total=size - have, desc=f"MLflow store -> {size:,} runs", unit="run") as bar:
            grow_mlflow(uri, experiment, have, size, bar)
        have = size
        copies[size] = ws / f"mlflow-{size}.db"
        shutil.copyfile(db, copies[size])
    return copies


def grow_mlflow(uri: str, experiment_id: str, have: int, want: int, bar) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri=uri)
    for i in range(have, want):
        params, metrics, tags = run_data(i)
        run = client.create_run(experiment_id, run_name=f"run-{i}")
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id)
        bar.update()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 runs, fewer repeats")
    parser.add_argument(
        "--runs", type=int, help="the big store's size (a smoke test of the script)"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target fails")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        CHILDREN[args.child[0]](*args.child[1:])
        return 0
    cfg = dict(QUICK if args.quick else FULL)
    if args.runs:
        cfg["runs"] = args.runs
    for name in list(os.environ):
        if name.startswith(("NBTRACK_", "MLFLOW_")):
            del os.environ[name]
    root = Path(tempfile.mkdtemp(prefix="nbtrack-scale-"))
    if not args.keep:
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    start_dir = os.getcwd()
    os.chdir(root)  # MLflow puts default artifact folders in the working directory
    results = Results(
        config={
            **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
            "quick": args.quick,
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "mlflow": core.version_of("mlflow"),
            "nbtrack": core.version_of("nbtrack"),
        }
    )
    started = perf_counter()
    try:
        measure(cfg, root, results)
    finally:
        os.chdir(start_dir)
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
    mode = "QUICK smoke run (reduced sizes)" if args.quick else "full run"
    print(
        f"\nnbtrack {results.config['nbtrack']} vs MLflow {results.config['mlflow']} (sqlite) at "
        f"scale - {mode}; Python {results.config['python']}, {results.config['machine']}; "
        f"{perf_counter() - started:.0f} s\n"
    )
    table = core.print_table(results)
    verdicts = [(r, r.verdict()) for r in results.rows if r.target]
    fails = [r for r, v in verdicts if v == "FAIL"]
    print(
        f"\ntargets: {sum(v == 'PASS' for _, v in verdicts)} PASS, {len(fails)} FAIL"
        + (": " + "; ".join(f"({r.wl}) {r.what}" for r in fails) if fails else "")
    )
    if args.json is not None:
        payload = {
            "config": results.config,
            "rows": [{**asdict(r), "verdict": r.verdict()} for r in results.rows],
            "raw": results.raw,
            "table": table,
        }
        args.json.write_text(json.dumps(payload, indent=1))
    return 1 if (args.strict and fails) else 0


if __name__ == "__main__":
    sys.exit(main())
