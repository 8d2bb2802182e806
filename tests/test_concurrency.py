"""Several real OS processes on one store: no run, point or experiment is lost or doubled.

The issue asks for "a concurrency test where 4 processes each create 250 runs with params
and metrics on one store and all 1,000 runs and their data are there after". The workers
below are separate interpreters (``sys.executable -c``) that meet at a file barrier, so
their catalog commits, journal appends and experiment creation really overlap.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import orjson
import pytest

from catalog_helpers import snapshot_meta
from nbtrack.store import Store, doctor
from nbtrack.store.catalog import CHANGELOG_NAME, SNAPSHOT_NAME
from nbtrack.store.journal import read_records

pytestmark = pytest.mark.slow  # several processes on one store

WORKERS = 4
RUNS_PER_WORKER = 250
STEPS = 4
METRIC_KEYS = ("loss", "acc")
EXPERIMENT = "shared"
ARTIFACT = "notes/summary.txt"


# The values every worker logs, and the test expects, are pure functions of (worker, index,
# step); the same code runs in both, so floats compare exactly.
VALUES = textwrap.dedent(
    """
    def loss(worker, index, step):
        return 1.0 / (1 + step + index) + worker / 7.0

    def acc(worker, index, step):
        return (step * 0.125 + index / 1000.0) - worker / 3.0

    def params(worker, index):
        return {"worker": str(worker), "index": str(index), "lr": repr(0.001 * (index + 1))}

    def tags(worker, index):
        return {"team": f"t{worker}", "parity": "even" if index % 2 == 0 else "odd"}

    def text(worker, index):
        return f"worker {worker} run {index}\\n" + "x" * (index % 17)
    """
)
namespace: dict = {}
exec(VALUES, namespace)
loss, acc, expected_params, expected_tags, artifact_text = (
    namespace[name] for name in ("loss", "acc", "params", "tags", "text")
)
METRIC_FUNCTIONS = {"loss": loss, "acc": acc}


# A worker: open the store, wait at the barrier, race set_experiment, then log its runs.
WORKER = VALUES + textwrap.dedent(
    """
    import json, os, sys, time
    import nbtrack

    store, worker, runs, steps, barrier, out = sys.argv[1:7]
    worker, runs, steps = int(worker), int(runs), int(steps)
    nbtrack.set_tracking_uri(store)
    nbtrack.search_experiments()  # open the store before the barrier
    open(os.path.join(barrier, f"ready-{worker}"), "w").close()
    go = os.path.join(barrier, "go")
    deadline = time.time() + 60
    while not os.path.exists(go):
        if time.time() > deadline:
            sys.exit("the barrier never opened")
        time.sleep(0.0005)
    experiment = nbtrack.set_experiment("shared")  # all workers at the same moment
    ids = []
    for index in range(runs):
        with nbtrack.start_run(run_name=f"w{worker}-r{index}") as run:
            nbtrack.log_params(params(worker, index))
            for step in range(steps):
                nbtrack.log_metric("loss", loss(worker, index, step), step=step)
                nbtrack.log_metrics({"acc": acc(worker, index, step)}, step=step)
            nbtrack.set_tags(tags(worker, index))
            nbtrack.log_text(text(worker, index), "notes/summary.txt")
        ids.append(run.info.run_id)
    with open(out, "w") as handle:
        json.dump({"experiment_id": experiment.experiment_id, "run_ids": ids}, handle)
    """
)


def _spawn(script: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _open_barrier(barrier: Path, count: int, procs: list[subprocess.Popen]) -> None:
    """Wait until ``count`` workers are ready, then let them all go at once."""
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < count:
        for proc in procs:
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"a worker exited before the barrier:\n{err}")
        assert time.monotonic() < deadline, "workers never reached the barrier"
        time.sleep(0.01)
    (barrier / "go").touch()


def _finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[str]:
    """Wait for every process; fail with the stderr of each one that did not exit 0."""
    results = []
    try:
        for proc in procs:
            results.append(proc.communicate(timeout=timeout))
    finally:
        for proc in procs:  # never leave a worker running after a failure
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    failures = [
        f"process {number} exited {proc.returncode}:\n{err}"
        for number, (proc, (_, err)) in enumerate(zip(procs, results, strict=True))
        if proc.returncode != 0
    ]
    assert not failures, "\n".join(failures)
    return [out for out, _ in results]


def _artifact_file(row: dict, relative: str) -> Path:
    return Path(unquote(urlparse(row["artifact_uri"]).path)) / relative


def _check_store(store: Store, experiment_id: str, expected: dict[str, tuple[int, int]]) -> None:
    """Every run, param, tag, latest metric, metric history and artifact is exactly right."""
    rows = store.runs()
    ids = [row["run_id"] for row in rows]
    assert len(ids) == len(set(ids)), "duplicate run ids in the catalog"
    assert len(rows) == WORKERS * RUNS_PER_WORKER
    assert set(ids) == set(expected)
    assert sorted(store.run_ids_on_disk()) == sorted(expected)
    for row in rows:
        run_id = row["run_id"]
        worker, index = expected[run_id]
        assert row["status"] == "FINISHED", row
        assert row["end_time"] is not None and row["end_time"] >= row["start_time"]
        assert row["experiment_id"] == experiment_id
        assert row["lifecycle_stage"] == "active"
        assert row["run_name"] == f"w{worker}-r{index}"
        assert row["params"] == expected_params(worker, index)
        assert row["tags"]["mlflow.runName"] == f"w{worker}-r{index}"
        for key, value in expected_tags(worker, index).items():
            assert row["tags"][key] == value
        assert set(row["metrics"]) == set(METRIC_KEYS)
        for key, function in METRIC_FUNCTIONS.items():
            value, step, _ = row["metrics"][key]
            assert (value, step) == (function(worker, index, STEPS - 1), STEPS - 1)
            steps, values, times = store.metric_history(run_id, key)
            assert list(steps) == list(range(STEPS))
            assert list(values) == [function(worker, index, s) for s in range(STEPS)]
            assert len(times) == STEPS
        content = artifact_text(worker, index).encode()
        assert _artifact_file(row, ARTIFACT).read_bytes() == content
        entries = list(read_records(store.journal_path(run_id), prefix=b'{"op":"artifact"'))
        assert [(e["path"], e["sha256"]) for e in entries] == [
            (ARTIFACT, hashlib.sha256(content).hexdigest())
        ]
    names = [e["name"] for e in store.experiments()]
    assert sorted(names) == ["Default", EXPERIMENT]


def _assert_healthy(store: Store) -> None:
    report = doctor(store, progress=False)
    assert report.healthy, str(report)
    assert report.runs_checked == WORKERS * RUNS_PER_WORKER
    assert not (report.indexed or report.killed or report.torn or report.unverifiable), str(report)


@pytest.mark.timeout(300)
def test_four_processes_create_1000_runs_on_one_store(tmp_path, store_dir, tracking):
    """4 processes x 250 runs, racing set_experiment: all 1,000 runs and their data are there."""
    started = time.monotonic()
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    outs = [tmp_path / f"worker-{w}.json" for w in range(WORKERS)]
    procs = [
        _spawn(WORKER, store_dir, w, RUNS_PER_WORKER, STEPS, barrier, outs[w])
        for w in range(WORKERS)
    ]
    _open_barrier(barrier, WORKERS, procs)
    _finish(procs)
    logged = time.monotonic()

    results = [json.loads(out.read_text()) for out in outs]
    experiment_ids = {r["experiment_id"] for r in results}
    assert len(experiment_ids) == 1, f"workers got different experiments: {experiment_ids}"
    (experiment_id,) = experiment_ids
    expected: dict[str, tuple[int, int]] = {}
    for worker, result in enumerate(results):
        assert len(result["run_ids"]) == RUNS_PER_WORKER
        for index, run_id in enumerate(result["run_ids"]):
            assert run_id not in expected, "two runs got the same id"
            expected[run_id] = (worker, index)

    # A fresh store object, as another kernel would open it.
    with Store(store_dir) as store:
        _check_store(store, experiment_id, expected)
        assert [e for e in store.experiments() if e["name"] == EXPERIMENT] == [
            store.get_experiment(experiment_id)
        ]
        _assert_healthy(store)

    # The fluent API over the same store: search_runs sees all 1,000 rows.
    frame = tracking.search_runs(experiment_ids=[experiment_id])
    assert len(frame) == WORKERS * RUNS_PER_WORKER
    assert frame["run_id"].is_unique
    assert set(frame["run_id"]) == set(expected)
    assert set(frame["status"]) == {"FINISHED"}
    assert set(frame["params.worker"]) == {str(w) for w in range(WORKERS)}
    only_one = tracking.search_runs(
        experiment_ids=[experiment_id], filter_string="params.worker = '2'"
    )
    assert len(only_one) == RUNS_PER_WORKER
    assert len(tracking.search_runs(experiment_names=[EXPERIMENT])) == WORKERS * RUNS_PER_WORKER
    for run_id, (worker, index) in expected.items():
        run = tracking.get_run(run_id)
        assert run.data.params == expected_params(worker, index)
        for key, function in METRIC_FUNCTIONS.items():
            assert run.data.metrics[key] == function(worker, index, STEPS - 1)
            history = tracking.get_metric_history(run_id, key)
            assert [m.step for m in history] == list(range(STEPS))
            assert [m.value for m in history] == [function(worker, index, s) for s in range(STEPS)]
    checked = time.monotonic()

    # The catalog is only an index: lose it, and opening the store rebuilds it from journals.
    for name in (SNAPSHOT_NAME, CHANGELOG_NAME):
        (store_dir / name).unlink(missing_ok=True)
    with Store(store_dir) as store:
        _check_store(store, experiment_id, expected)
        _assert_healthy(store)

    # ... and so does `nbtrack doctor --rebuild`, run as a user would.
    for name in (SNAPSHOT_NAME, CHANGELOG_NAME):
        (store_dir / name).unlink(missing_ok=True)
    cli = subprocess.run(
        [sys.executable, "-m", "nbtrack.cli", "--store", str(store_dir), "doctor", "--rebuild"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "catalog rebuilt" in cli.stdout and "store is healthy" in cli.stdout
    with Store(store_dir) as store:
        _check_store(store, experiment_id, expected)
        _assert_healthy(store)
    finished = time.monotonic()
    print(
        f"\n1,000 runs: logging {logged - started:.1f}s, checking {checked - logged:.1f}s, "
        f"rebuilds {finished - checked:.1f}s"
    )


@pytest.mark.timeout(120)
def test_set_experiment_races_create_exactly_one_experiment(tmp_path, store_dir):
    """Processes calling set_experiment('shared') at the same moment all succeed, on one id."""
    script = textwrap.dedent(
        """
        import os, sys, time
        import nbtrack

        store, worker, barrier = sys.argv[1:4]
        nbtrack.set_tracking_uri(store)
        nbtrack.search_experiments()
        open(os.path.join(barrier, f"ready-{worker}"), "w").close()
        while not os.path.exists(os.path.join(barrier, "go")):
            time.sleep(0.0002)
        print(nbtrack.set_experiment("shared").experiment_id)
        """
    )
    for attempt in range(3):  # each attempt is a fresh store, so the creation races again
        root = store_dir / str(attempt)
        barrier = tmp_path / f"barrier-{attempt}"
        barrier.mkdir()
        procs = [_spawn(script, root, w, barrier) for w in range(WORKERS)]
        _open_barrier(barrier, WORKERS, procs)
        ids = {out.strip() for out in _finish(procs)}
        assert len(ids) == 1, ids
        with Store(root) as store:
            shared = [e for e in store.experiments() if e["name"] == "shared"]
            assert [e["experiment_id"] for e in shared] == list(ids)
        journal = [
            orjson.loads(line) for line in (root / "experiments.jsonl").read_bytes().splitlines()
        ]
        created = [r for r in journal if r["patch"].get("set", {}).get("name") == "shared"]
        assert len(created) == 1


# Two writers log runs while a third process searches in a loop. The writers compact the
# catalog often (a small threshold), so the searcher also reads across snapshot rewrites.
WRITER = textwrap.dedent(
    """
    import os, sys, time
    import nbtrack
    import nbtrack.store.catalog as catalog

    catalog.COMPACT_MIN_BYTES = 16 << 10  # rewrite the snapshot often while others read it
    store, worker, runs, barrier = sys.argv[1:5]
    worker, runs = int(worker), int(runs)
    nbtrack.set_tracking_uri(store)
    nbtrack.search_experiments()
    open(os.path.join(barrier, f"ready-{worker}"), "w").close()
    while not os.path.exists(os.path.join(barrier, "go")):
        time.sleep(0.0005)
    for index in range(runs):
        with nbtrack.start_run(run_name=f"w{worker}-r{index}"):
            nbtrack.log_params({"worker": worker, "index": index})
            for step in range(5):
                nbtrack.log_metric("loss", 1.0 / (index + step + 1), step=step)
        time.sleep(0.05)  # about 4 s in all: each writer commits about once a second
    nbtrack.flush()  # other processes see commits within a second, or at once after flush()
    open(os.path.join(barrier, f"done-{worker}"), "w").close()
    """
)

SEARCHER = textwrap.dedent(
    """
    import json, os, sys, time
    import nbtrack

    store, barrier, writers, out = sys.argv[1:5]
    nbtrack.set_tracking_uri(store)
    nbtrack.search_runs(search_all_experiments=True)  # open the store, import pandas
    open(os.path.join(barrier, "ready-searcher"), "w").close()
    while not os.path.exists(os.path.join(barrier, "go")):
        time.sleep(0.0005)
    counts = []
    def done():
        return all(os.path.exists(os.path.join(barrier, f"done-{w}")) for w in range(int(writers)))
    while True:
        finished = done()
        frame = nbtrack.search_runs(search_all_experiments=True)
        assert frame["run_id"].is_unique, "a run appeared twice"
        ended = frame[frame["status"] == "FINISHED"] if len(frame) else frame
        if len(ended):  # a FINISHED run's row is complete: its params and metric are there
            assert ended["params.worker"].notna().all() and ended["metrics.loss"].notna().all()
        counts.append(len(frame))
        if finished:
            break
    with open(out, "w") as handle:
        json.dump(counts, handle)
    """
)


@pytest.mark.timeout(180)
def test_searcher_sees_run_count_only_grow_while_two_processes_log(tmp_path, store_dir):
    runs_each = 80
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    out = tmp_path / "counts.json"
    writers = [_spawn(WRITER, store_dir, w, runs_each, barrier) for w in range(2)]
    searcher = _spawn(SEARCHER, store_dir, barrier, 2, out)
    _open_barrier(barrier, 3, [*writers, searcher])
    _finish([*writers, searcher])

    counts = json.loads(out.read_text())
    assert counts[-1] == 2 * runs_each, counts[-5:]
    decreases = [(a, b) for a, b in itertools.pairwise(counts) if b < a]
    assert not decreases, f"the run count went down: {decreases[:5]}"
    seen = set(counts)
    # The searcher saw the store grow while it searched (its catalog was re-read after
    # each of the writers' once-a-second commits).
    assert len([c for c in seen if 0 < c < 2 * runs_each]) >= 3, sorted(seen)

    print(f"\nsearcher: {len(counts)} searches saw {len(seen)} distinct run counts")
    assert snapshot_meta(store_dir)["generation"] > 2, "the catalog was never compacted"
    with Store(store_dir) as store:
        rows = store.runs()
        assert len(rows) == 2 * runs_each
        assert {row["status"] for row in rows} == {"FINISHED"}
        pairs = sorted((row["params"]["worker"], int(row["params"]["index"])) for row in rows)
        assert pairs == sorted((str(w), i) for w in range(2) for i in range(runs_each))
        for row in rows:
            index = int(row["params"]["index"])
            assert row["metrics"]["loss"][:2] == [1.0 / (index + 5), 4]
        report = doctor(store, progress=False)
        assert report.healthy and report.runs_checked == 2 * runs_each, str(report)


@pytest.mark.timeout(120)
def test_a_process_writing_from_two_threads_never_hangs(store_dir):
    """One thread logs metrics (the flusher commits them each second) while another writes
    experiment tags and new runs (each write commits under the store lock): all of it is
    written, and nothing waits for good. Before the fix, this hung at the flusher's first tick."""
    script = textwrap.dedent(
        """
        import sys, threading, time
        import nbtrack

        nbtrack.set_tracking_uri(sys.argv[1])
        experiment = nbtrack.set_experiment("two-threads")
        client = nbtrack.MlflowClient()
        stop, steps = threading.Event(), []

        def train():
            with nbtrack.start_run(run_name="training") as run:
                while not stop.is_set():
                    nbtrack.log_metric("loss", 1.0 / (len(steps) + 1), step=len(steps))
                    steps.append(run.info.run_id)
                    time.sleep(0.0005)

        thread = threading.Thread(target=train)
        thread.start()
        writes, started = 0, time.monotonic()
        while time.monotonic() - started < 3:
            client.set_experiment_tag(experiment.experiment_id, "writes", str(writes + 1))
            if writes % 50 == 0:
                client.create_run(experiment.experiment_id, run_name=f"side-{writes}")
            writes += 1
        stop.set()
        thread.join()
        print(writes, len(steps), steps[0])
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, store_dir], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung: its two threads wait on each other")
    assert done.returncode == 0, done.stderr
    writes, steps, run_id = done.stdout.split()
    with Store(store_dir) as store:
        experiment = next(e for e in store.experiments() if e["name"] == "two-threads")
        assert experiment["tags"]["writes"] == writes
        steps_written, _, _ = store.metric_history(run_id, "loss")
        assert list(steps_written) == list(range(int(steps)))
        sides = {f"side-{i}" for i in range(0, int(writes), 50)}
        assert {r["run_name"] for r in store.runs()} == {"training", *sides}
