"""nbtrack sync against a local ``mlflow server`` (sqlite), side by side in one run.

Workloads (issue 13; see benchmarks/README.md):

    push    100 runs x (20 params, 10 metrics x 100 steps, 2 artifacts): nbtrack.sync.push,
            beside (a) MLflow's own fluent client logging the same straight to the server
            (mlflow.log_metric per step; timed on a few runs, scaled) and (b) the floor:
            the same points as raw log_batch requests of 1,000, bodies built beforehand;
            push and the floor each on a fresh server of their own
    again   a second push: runs created, values sent, requests
    kills   10 pushes each SIGKILLed at a random moment, then one more: server == store
    pull    1,000 remote runs into a fresh store; the run table renders them
    auto    a training loop, each run timed while background sync or a shadow process
            pushes the run before it (pairs alternating; medians and per-pair ratios)

Each server has MLflow's default four worker processes and the job runner off. Requests
are counted from the server's access log. For push and auto, the server's processes are
pinned to one core and this process to the other, as if the server ran on a machine of
its own (a team's server does). Usage::

    .venv/bin/python benchmarks/bench_sync.py            # everything (~15 min on 2 cores)
    .venv/bin/python benchmarks/bench_sync.py --quick    # smaller sizes
    .venv/bin/python benchmarks/bench_sync.py --only push,again

Not a test: it prints figures and PASS/FAIL against the targets and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

FULL = {"runs": 100, "a_runs": 3, "kills": 10, "pull_runs": 1000, "pairs": 60}
QUICK = {"runs": 20, "a_runs": 1, "kills": 3, "pull_runs": 200, "pairs": 4}
PARAMS, METRICS, STEPS = 20, 10, 100
ACCESS = re.compile(rb'"(GET|POST|PUT|PATCH|DELETE) [^"]*" \d{3}')


class Server:
    """A real mlflow server; requests counted from its access log."""

    def __init__(self, root: Path) -> None:
        from sync_helpers import start_server

        # MLflow 3's job runner (GenAI jobs, huey consumers) is off: for its first ~15 s it
        # stalls each write to a sqlite store by ~1 s, which fell on whichever workload ran
        # first (the push) and not on the floor measured after it.
        # Four worker processes, MLflow's default, as a team's server runs.
        self.handle = start_server(
            root, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, workers=4
        )
        self.uri = self.handle.uri
        self.log = root / "server.log"

    def requests(self) -> int:
        return len(ACCESS.findall(self.log.read_bytes()))

    def stop(self) -> None:
        from sync_helpers import stop_server

        stop_server(self.handle)


def build_store(path: Path, runs: int, experiment: str) -> None:
    """runs x (20 params, 10 metrics x 100 steps, 2 artifacts), through nbtrack's API."""
    import nbtrack

    nbtrack.set_tracking_uri(path)
    nbtrack.set_experiment(experiment)
    for n in range(runs):
        with nbtrack.start_run(run_name=f"run-{n}"):
            nbtrack.log_params({f"param_{i}": i * n for i in range(PARAMS)})
            for step in range(STEPS):
                nbtrack.log_metrics(
                    {f"metric_{k}": (step + 1) * (k + 1) / (n + 1) for k in range(METRICS)},
                    step=step,
                )
            nbtrack.log_text("x" * 10_000, "report.txt")
            nbtrack.log_dict({"run": n, "features": list(range(500))}, "config/config.json")
    nbtrack.flush()


def measure(server: Server, work) -> tuple[float, int]:
    before, started = server.requests(), time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    time.sleep(0.5)  # the access log is written after the answer
    return seconds, server.requests() - before


@contextlib.contextmanager
def serving(root: Path) -> Iterator[Server]:
    """A fresh server (its own sqlite database), pinned apart from this process."""
    server = Server(root)
    try:
        with _cores_apart(server):  # as if the server ran on a machine of its own
            yield server
    finally:
        server.stop()


def bench_push(sizes: dict, scratch: Path) -> dict:
    """Push and the floor each on a fresh server: neither writes into a database the
    other has filled (a sqlite write costs more as the tables grow)."""
    import mlflow

    import nbtrack.sync

    experiment = f"bench-{uuid.uuid4().hex[:6]}"
    build_store(scratch / "push-store", sizes["runs"], experiment)
    store = nbtrack.tracking.fluent.current_store()
    result = {}
    with serving(scratch / "floor-server") as server:
        result.update(bench_floor(server, sizes, experiment))
    with serving(scratch / "push-server") as server:
        push_s, push_n = measure(
            server, lambda: nbtrack.sync.push(server.uri, store=store, progress=False)
        )
        again = {}

        def second() -> None:
            again["report"] = nbtrack.sync.push(server.uri, store=store, progress=False)

        again_s, again_n = measure(server, second)

        # (a) MLflow's own client, the way a user logs: log_metric per step, per metric.
        client = mlflow.tracking.MlflowClient(tracking_uri=server.uri)
        a_experiment = client.create_experiment(experiment + "-mlflow")
        mlflow.set_tracking_uri(server.uri)
        files = scratch / "files"
        (files / "config").mkdir(parents=True, exist_ok=True)
        (files / "report.txt").write_text("x" * 10_000)
        (files / "config" / "config.json").write_text('{"run": 0}')

        def fluent() -> None:
            for n in range(sizes["a_runs"]):
                with mlflow.start_run(experiment_id=a_experiment, run_name=f"run-{n}"):
                    mlflow.log_params({f"param_{i}": i * n for i in range(PARAMS)})
                    for step in range(STEPS):
                        for k in range(METRICS):
                            mlflow.log_metric(f"metric_{k}", (step + 1) * (k + 1), step=step)
                    mlflow.log_artifact(str(files / "report.txt"))
                    mlflow.log_artifact(str(files / "config" / "config.json"), "config")

        a_s, a_n = measure(server, fluent)
    scale = sizes["runs"] / sizes["a_runs"]
    report = again["report"]
    return {
        **result,
        "push_s": push_s,
        "push_requests": push_n,
        "a_s": a_s * scale,
        "a_requests": int(a_n * scale),
        "a_measured_runs": sizes["a_runs"],
        "again_s": again_s,
        "again_requests": again_n,
        "again_created": report.created,
        "again_values": report.values,
    }


def bench_floor(server: Server, sizes: dict, experiment: str) -> dict:
    """(b) the floor: the push's points as raw log_batch requests of 1,000, bodies prebuilt."""
    import mlflow
    import orjson
    import requests

    client = mlflow.tracking.MlflowClient(tracking_uri=server.uri)
    experiment_id = client.create_experiment(experiment)
    runs = [client.create_run(experiment_id).info.run_id for _ in range(sizes["runs"])]
    now = int(time.time() * 1000)
    bodies = [
        orjson.dumps(
            {
                "run_id": run_id,
                "metrics": [
                    {"key": f"metric_{k}", "value": step * k / 7, "timestamp": now, "step": step}
                    for step in range(STEPS)
                    for k in range(METRICS)
                ],
            }
        )
        for run_id in runs
    ]
    session = requests.Session()
    url = f"{server.uri}/api/2.0/mlflow/runs/log-batch"
    headers = {"Content-Type": "application/json"}

    def floor() -> None:
        for body in bodies:
            session.post(url, data=body, headers=headers).raise_for_status()

    b_s, b_n = measure(server, floor)
    return {"b_s": b_s, "b_requests": b_n}


def bench_kills(server: Server, sizes: dict, scratch: Path) -> dict:
    import mlflow

    import nbtrack.sync
    from nbtrack.store import Store
    from nbtrack.tracking.session import close_stores
    from sync_helpers import assert_run_equal

    experiment = f"kills-{uuid.uuid4().hex[:6]}"
    path = scratch / "kill-store"
    build_store(path, sizes["runs"], experiment)
    close_stores()
    script = (
        "import sys, nbtrack.sync\nfrom nbtrack.store import Store\n"
        "nbtrack.sync.push(sys.argv[1], store=Store(sys.argv[2]), progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    # Kills fall while runs are being sent: after Python, nbtrack and MLflow have started
    # (1.5 s on a quiet machine, twice that on a busy one), within the next 2.5 s.
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import nbtrack.sync, mlflow.tracking"], env=env)
    startup = time.perf_counter() - started
    rng = random.Random(7)
    delays, finished = [], 0
    for _ in range(sizes["kills"]):
        process = subprocess.Popen(
            [sys.executable, "-c", script, server.uri, str(path)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        delays.append(startup + rng.uniform(0.0, 2.5))
        time.sleep(delays[-1])
        finished += process.poll() is not None  # done before the kill came
        process.send_signal(signal.SIGKILL)
        process.wait()
    store = Store(path)
    report = nbtrack.sync.push(server.uri, store=store, progress=False)
    client = mlflow.tracking.MlflowClient(tracking_uri=server.uri)
    remote = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id], max_results=1000
    )
    local = [r for r in store.runs() if r["lifecycle_stage"] == "active"]
    equal = True
    try:
        for row in local:
            assert_run_equal(client, store, row["run_id"], row["synced"][server.uri])
    except AssertionError:
        equal = False
    store.close()
    return {
        "kills": len(delays),
        "delays": (min(delays), max(delays)),
        "finished": finished,
        "local_runs": len(local),
        "remote_runs": len(remote),
        "distinct_local_ids": len({r.data.tags.get("nbtrack.local_run_id") for r in remote}),
        "final_push": str(report),
        "equal": equal,
    }


def bench_pull(server: Server, sizes: dict, scratch: Path) -> dict:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    import nbtrack.sync
    from nbtrack.render import runs_table_text
    from nbtrack.store import Store
    from nbtrack.tracking import runs as tracking_runs

    client = mlflow.tracking.MlflowClient(tracking_uri=server.uri)
    experiment = f"team-{uuid.uuid4().hex[:6]}"
    experiment_id = client.create_experiment(experiment)
    now = int(time.time() * 1000)
    for n in range(sizes["pull_runs"]):  # a teammate's runs: 5 params, 3 metrics x 10 steps
        run_id = client.create_run(experiment_id, run_name=f"theirs-{n}").info.run_id
        client.log_batch(
            run_id,
            metrics=[
                Metric(f"m{k}", step * k / (n + 1), now + step, step)
                for k in range(3)
                for step in range(10)
            ],
            params=[Param(f"p{i}", str(i * n)) for i in range(5)],
            tags=[RunTag("mlflow.user", "bob")],
        )
        client.set_terminated(run_id)
    store = Store(scratch / "pull-store")
    before, started = server.requests(), time.perf_counter()
    report = nbtrack.sync.pull(server.uri, experiment, store=store, progress=False)
    pull_s = time.perf_counter() - started
    time.sleep(0.5)
    pull_n = server.requests() - before
    started = time.perf_counter()
    again = nbtrack.sync.pull(server.uri, experiment, store=store, progress=False)
    again_s = time.perf_counter() - started
    started = time.perf_counter()
    rows = tracking_runs.search_rows(store, None, "", max_results=None)
    text = runs_table_text(rows)
    table_s = time.perf_counter() - started
    store.close()
    return {
        "runs": report.created,
        "pull_s": pull_s,
        "pull_requests": pull_n,
        "again_s": again_s,
        "again_unchanged": again.unchanged,
        "table_rows": text.count("theirs-"),
        "table_s": table_s,
    }


def bench_auto(server: Server, sizes: dict, scratch: Path) -> dict:
    """A training loop: each step does ~20 ms of numpy work and logs 10 metrics.

    The target is what background sync costs the notebook's process, where a team's
    server runs on another machine. Here it shares two cores with the loop, so the
    server is pinned to one core and this process, with one BLAS thread, to the other.
    That is not enough on this machine: a busy core slows its neighbour (a busy loop on
    one core made the numpy loop on the other 4-15% slower), so the server's own work on
    the runs it receives would be charged to the "on" runs. A :class:`ShadowPusher` on
    the server's core pushes the runs that background sync does not, so every timed run
    runs beside a server doing the same work, and only the syncing thread in this
    process differs.
    """
    with _cores_apart(server), threadpool_limits(1), ShadowPusher(server) as shadow:
        return _auto_pairs(server, sizes, scratch, shadow)


SHADOW = """
import sys
from nbtrack.store import Store
from nbtrack.sync import push_over
from nbtrack.sync.server import Server

connection, stores = Server(sys.argv[1]), {}
for line in sys.stdin:
    if not line.strip():
        print("done", flush=True)
        continue
    path, run_id = line.rsplit(None, 1)
    store = stores.get(path) or stores.setdefault(path, Store(path))
    push_over(connection, store, None, "", [run_id], False)
"""


class ShadowPusher:
    """A process on the server's core that pushes the runs it is sent, one at a time,
    over one connection, as background sync does; an empty line waits for it."""

    def __init__(self, server: Server) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SHADOW, server.uri],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(self.process.pid, {0})
        self.wait()  # started: nbtrack and MLflow imported

    def push(self, store: Path, run_id: str) -> None:
        self.process.stdin.write(f"{store} {run_id}\n")
        self.process.stdin.flush()

    def wait(self) -> None:
        """Until every run sent so far is pushed (stdin is read in order)."""
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "done\n", "the shadow push failed"

    def __enter__(self) -> ShadowPusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stdin.close()
        self.process.wait(60)


@contextlib.contextmanager
def _cores_apart(server: Server) -> Iterator[None]:
    import psutil

    if (os.cpu_count() or 1) < 2:
        yield
        return
    everything = set(range(os.cpu_count() or 1))
    process = psutil.Process(server.handle.process.pid)
    server_side = [process, *process.children(recursive=True)]
    for part in server_side:
        part.cpu_affinity([0])
    os.sched_setaffinity(0, everything - {0})
    try:
        yield
    finally:
        os.sched_setaffinity(0, everything)
        for part in server_side:
            with contextlib.suppress(psutil.Error):
                part.cpu_affinity(sorted(everything))


def _auto_pairs(server: Server, sizes: dict, scratch: Path, shadow: ShadowPusher) -> dict:
    """Background sync stays on; each run is timed while the run before it is pushed,
    by the syncing thread ("on") or by the shadow ("off"). The two alternate run by
    run in pairs (on-off, off-on, ...), so the machine's drift, which moves a run's
    time by 10-20% over a minute here, falls on both alike."""
    import numpy as np

    import nbtrack
    import nbtrack.sync
    from nbtrack.tracking import fluent
    from nbtrack.tracking.session import close_stores

    weights = np.random.default_rng(0).standard_normal((300, 300))
    store = scratch / "auto"
    nbtrack.set_tracking_uri(store)
    nbtrack.set_experiment("auto")
    syncer = nbtrack.sync.auto(server.uri)
    syncer.wait(120)  # the start-up push of nothing
    # The runs are queued here instead of by the session's end hook: half go to the shadow.
    fluent.default_session().run_end_hooks.remove(syncer.run_ended)

    def run(n: int) -> str:
        with nbtrack.start_run(run_name=f"run-{n}") as active:
            nbtrack.log_params({f"param_{i}": i for i in range(PARAMS)})
            x = weights
            for step in range(STEPS):
                for _ in range(6):
                    x = np.tanh(x @ weights / 300)
                nbtrack.log_metrics({f"metric_{k}": float(x[k, k]) for k in range(10)}, step)
        return active.info.run_id

    def other_threads_cpu() -> float:  # the process's, ended threads' included
        return time.process_time() - time.thread_time()

    walls: dict[str, list[float]] = {"on": [], "off": []}
    loop_cpu: dict[str, list[float]] = {"on": [], "off": []}
    # The store's flusher and the environment capture are threads of this process too.
    other_cpu: dict[str, list[float]] = {"on": [], "off": []}
    previous = run(0)
    modes = [m for i in range(sizes["pairs"]) for m in (("on", "off"), ("off", "on"))[i % 2]]
    for n, mode in enumerate(modes, 1):
        if mode == "on":
            syncer.queue(fluent.current_store(), previous)
        else:
            shadow.push(store, previous)
        cpu, started, own = other_threads_cpu(), time.perf_counter(), time.thread_time()
        previous = run(n)
        walls[mode].append(time.perf_counter() - started)
        loop_cpu[mode].append(time.thread_time() - own)
        if mode == "on":
            assert syncer.wait(120), "background sync did not finish"
        else:
            shadow.wait()
        other_cpu[mode].append(other_threads_cpu() - cpu)
    nbtrack.sync.auto(None)
    close_stores()
    offs, ons = walls["off"], walls["on"]
    return {
        "off_s": statistics.median(offs),
        "on_s": statistics.median(ons),
        "overhead": statistics.median(ons) / statistics.median(offs) - 1,
        "per_pair": statistics.median(b / a - 1 for a, b in zip(offs, ons, strict=True)),
        "sync_cpu_ms": (statistics.mean(other_cpu["on"]) - statistics.mean(other_cpu["off"])) * 1e3,
        "spread": (min(offs + ons), max(offs + ons)),
        "loop_cpu": {mode: statistics.median(xs) for mode, xs in loop_cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="push,kills,pull,auto")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    scratch = Path(tempfile.mkdtemp(prefix="nbtrack-bench-sync-"))
    server = Server(scratch / "server")
    load = os.getloadavg()
    print(f"mlflow server (sqlite, 4 workers) at {server.uri}; load {load[0]:.1f} on "
          f"{os.cpu_count()} cores")  # fmt: skip
    try:
        only = args.only.split(",")
        if "push" in only:
            r = bench_push(sizes, scratch)
            print(f"\npush of {sizes['runs']} runs x ({PARAMS} params, {METRICS} metrics x "
                  f"{STEPS} steps, 2 artifacts)")  # fmt: skip
            print(
                f"  nbtrack.sync.push      {r['push_s']:8.1f} s  {r['push_requests']:7,} requests"
            )
            print(f"  (a) mlflow fluent      {r['a_s']:8.1f} s  {r['a_requests']:7,} requests "
                  f"(measured on {r['a_measured_runs']} runs, scaled)")  # fmt: skip
            print(f"  (b) floor, log_batch   {r['b_s']:8.1f} s  {r['b_requests']:7,} requests")
            ratio_b, ratio_a = r["push_s"] / r["b_s"], r["a_s"] / r["push_s"]
            print(f"  push / floor = {ratio_b:.2f}x (target <= 1.25x: "
                  f"{'PASS' if ratio_b <= 1.25 else 'FAIL'}); (a) / push = {ratio_a:.0f}x "
                  f"(target >= 50x: {'PASS' if ratio_a >= 50 else 'FAIL'})")  # fmt: skip
            print(f"  second push: {r['again_created']} runs created, {r['again_values']} "
                  f"values sent, {r['again_requests']} requests, {r['again_s']:.2f} s")  # fmt: skip
        if "kills" in only:
            r = bench_kills(server, sizes, scratch)
            low, high = r["delays"]
            print(f"\n{r['kills']} pushes SIGKILLed at random moments, {low:.1f}-{high:.1f} s "
                  f"after they started ({r['finished']} had finished before theirs came), "
                  "then one more push:")  # fmt: skip
            print(f"  {r['final_push']}")
            print(f"  server: {r['remote_runs']} runs ({r['distinct_local_ids']} distinct local "
                  f"ids) for {r['local_runs']} local; every value equal: {r['equal']}")  # fmt: skip
        if "pull" in only:
            r = bench_pull(server, sizes, scratch)
            print(f"\npull of {r['runs']} remote runs into a fresh store: {r['pull_s']:.1f} s, "
                  f"{r['pull_requests']:,} requests; again: {r['again_s']:.1f} s "
                  f"({r['again_unchanged']} unchanged); run table of "
                  f"{r['table_rows']} runs rendered in {r['table_s']:.2f} s")  # fmt: skip
        if "auto" in only:
            r = bench_auto(server, sizes, scratch)
            verdict = "PASS" if max(r["overhead"], r["per_pair"]) <= 0.02 else "FAIL"
            print(f"\ntraining loop, {sizes['pairs']} pairs of runs: a run while the one "
                  f"before is pushed by the shadow {r['off_s']:.2f} s, by background sync "
                  f"{r['on_s']:.2f} s (medians): {r['overhead'] * 100:+.1f}%; median of "
                  f"per-pair ratios {r['per_pair'] * 100:+.1f}% (target <= 2% by both: "
                  f"{verdict})")  # fmt: skip
            low, high = r["spread"]
            print(f"  runs took {low:.2f}-{high:.2f} s; background sync's CPU "
                  f"{r['sync_cpu_ms']:.0f} ms a pushed run "
                  f"({r['sync_cpu_ms'] / 1e3 / r['off_s'] * 100:.1f}% of a run); the "
                  f"loop's own CPU a run (medians) {r['loop_cpu']['off']:.2f} s beside the "
                  f"shadow, {r['loop_cpu']['on']:.2f} s beside background sync")  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
