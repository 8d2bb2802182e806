"""Crashes: a SIGKILLed writer loses no flushed point, and its run ends up KILLED.

The issue asks for "a crash test that SIGKILLs a process logging metrics at random moments
(>= 10 times) and then opens the store with every flushed point present and the killed
run marked KILLED after doctor". A torn last journal record, which a kill can leave but
rarely does, is also made by hand so that its handling is tested every time, and so is a
torn tail of the catalog's change log.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import orjson
import pytest

from nbtrack.store import Store, doctor
from nbtrack.store.catalog import CHANGELOG_NAME, SNAPSHOT_NAME
from nbtrack.store.journal import TornRecordWarning, dumps, read_records
from nbtrack.tracking import fluent

pytestmark = pytest.mark.slow  # loggers killed at random moments

ITERATIONS = 12
SEED = 20_261_126


def loss(step: int) -> float:
    return 1.0 / (step + 1) + step * 1e-6


def acc(step: int) -> float:
    return 1.0 - 1.0 / (step + 2)


# The child logs two metrics per step and calls nbtrack.flush() every `every` steps; right
# after flush() returns it appends "flushed <step>" to a side file with os.write + fsync,
# so the test knows which points nbtrack promised were durable. `pause` slows some
# children down enough that the background thread also flushes and commits between
# explicit flushes.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    import nbtrack

    store, side, every, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(line):
        os.write(fd, line.encode() + b"\\n")
        os.fsync(fd)

    def loss(step):
        return 1.0 / (step + 1) + step * 1e-6

    def acc(step):
        return 1.0 - 1.0 / (step + 2)

    nbtrack.set_tracking_uri(store)
    run = nbtrack.start_run(run_name="doomed")
    nbtrack.log_param("every", every)
    record(f"run {run.run_id}")
    step = 0
    while True:
        nbtrack.log_metric("loss", loss(step), step=step)
        nbtrack.log_metric("acc", acc(step), step=step)
        if (step + 1) % every == 0:
            nbtrack.flush()
            record(f"flushed {step}")
        step += 1
        if pause:
            time.sleep(pause)
    """
)


def _side_file(path: Path) -> tuple[str | None, int]:
    """The run id and the last step the child saw nbtrack.flush() return for (-1: none)."""
    run_id, flushed = None, -1
    data = path.read_bytes() if path.exists() else b""
    for line in data[: data.rfind(b"\n") + 1].decode().splitlines():
        kind, value = line.split()
        if kind == "run":
            run_id = value
        else:
            flushed = int(value)
    return run_id, flushed


def _start_child(store_dir: Path, side: Path, every: int, pause: float) -> subprocess.Popen:
    with open(side.with_suffix(".err"), "wb") as err:  # a file: a pipe could fill and block
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(store_dir), str(side), str(every), str(pause)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _stderr(side: Path) -> str:
    return side.with_suffix(".err").read_text(errors="replace")


def _wait_for_run(child: subprocess.Popen, side: Path) -> str:
    deadline = time.monotonic() + 60
    while True:
        run_id, _ = _side_file(side)
        if run_id is not None:
            return run_id
        if child.poll() is not None:
            pytest.fail(f"the child died before starting its run:\n{_stderr(side)}")
        assert time.monotonic() < deadline, "the child never started its run"
        time.sleep(0.005)


def _check_points(store: Store, run_id: str, flushed: int) -> int:
    """Every flushed point (and anything after it) is there, in order, with its value."""
    last = -1
    for key, function in (("loss", loss), ("acc", acc)):
        steps, values, _ = store.metric_history(run_id, key)
        assert list(steps) == list(range(len(steps))), f"{key}: steps missing or out of order"
        assert len(steps) >= flushed + 1, f"{key}: flushed up to {flushed}, found {len(steps)}"
        assert list(values) == [function(s) for s in steps]
        row_metrics = store.get_run(run_id).get("metrics", {})
        if len(steps):  # the catalog's latest point is the journal's latest point
            assert row_metrics[key][:2] == [values[-1], steps[-1]], (key, row_metrics)
            last = max(last, steps[-1])
        else:
            assert key not in row_metrics
    return last


def _check_killed(store: Store, run_id: str, every: int) -> None:
    row = store.get_run(run_id)
    assert row["status"] == "KILLED", row["status"]
    assert row["end_time"] is not None and row["end_time"] >= row["start_time"]
    assert row["params"] == {"every": str(every)}
    # The status is in the journal (the truth), not only in the catalog.
    sets = [r for r in store.records(run_id) if r["op"] == "set"]
    assert sets and sets[-1]["fields"]["status"] == "KILLED"


def _ends_cleanly(path: Path) -> bool:
    data = path.read_bytes()
    return not data or data.endswith(b"\n")


@pytest.mark.timeout(300)
def test_sigkilled_logger_keeps_every_flushed_point_and_ends_killed(store_dir, tmp_path):
    rng = random.Random(SEED)
    held = Store(store_dir)  # open during the kills, like a second kernel on the store
    killed: dict[str, tuple[int, int]] = {}  # run id: (last flushed step, every)
    torn_seen = 0
    started = time.monotonic()
    try:
        for iteration in range(ITERATIONS):
            every = rng.choice([1, 7, 50, 300])
            pause = rng.choice([0.0, 0.0, 0.002])
            side = tmp_path / f"side-{iteration}.txt"
            child = _start_child(store_dir, side, every, pause)
            run_id = _wait_for_run(child, side)
            time.sleep(rng.uniform(0.0, 1.5))
            assert child.poll() is None, f"the child exited on its own:\n{_stderr(side)}"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
            assert child.returncode == -signal.SIGKILL
            _, flushed = _side_file(side)
            journal = store_dir / "runs" / run_id / "journal.jsonl"
            torn = not _ends_cleanly(journal)

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if iteration % 2 == 0:
                    # doctor on a store that was open all along marks the dead run KILLED.
                    assert held.get_run(run_id)["status"] == "RUNNING"
                    report = doctor(held, progress=False)
                    assert report.killed == [run_id], str(report)
                    assert report.healthy, str(report)
                    store = held
                else:
                    # Simply opening the store on the same host does it too.
                    store = Store(store_dir)
                    report = doctor(store, progress=False)
                    assert report.healthy and not report.killed, str(report)
            torn_warnings = [w for w in caught if issubclass(w.category, TornRecordWarning)]
            if torn:
                torn_seen += 1
                assert torn_warnings, "a torn journal tail was mended without a warning"
            assert _ends_cleanly(journal)
            _check_killed(store, run_id, every)
            _check_points(store, run_id, flushed)
            killed[run_id] = flushed, every
            if store is not held:
                store.close()
    finally:
        held.close()
    elapsed = time.monotonic() - started

    # Every crash, seen by a fresh store: all KILLED, every flushed point, and healthy.
    with Store(store_dir) as store:
        assert sorted(r["run_id"] for r in store.runs()) == sorted(killed)
        for run_id, (flushed, every) in killed.items():
            _check_killed(store, run_id, every)
            _check_points(store, run_id, flushed)
        report = doctor(store, progress=False)
        assert report.healthy and not (report.killed or report.torn or report.drifted)
        assert report.runs_checked == ITERATIONS
    # ... and after rebuilding the catalog from the journals alone.
    for name in (SNAPSHOT_NAME, CHANGELOG_NAME):
        (store_dir / name).unlink()
    with Store(store_dir) as store:
        for run_id, (flushed, every) in killed.items():
            _check_killed(store, run_id, every)
            _check_points(store, run_id, flushed)
        assert doctor(store, progress=False).healthy
    print(f"\n{ITERATIONS} kills in {elapsed:.1f}s; torn journal tails seen: {torn_seen}")


# -- a torn journal tail, made by hand ------------------------------------------------------

CRASHED_WRITER = textwrap.dedent(
    """
    import os, sys
    import nbtrack

    nbtrack.set_tracking_uri(sys.argv[1])
    run = nbtrack.start_run(run_name="torn")
    nbtrack.log_params({"lr": 0.1, "depth": 3})
    for step in range(10):
        nbtrack.log_metric("loss", 1.0 / (step + 1), step=step)
    if sys.argv[2] == "finish":
        nbtrack.end_run()
    nbtrack.flush()
    print(run.run_id)
    os._exit(0)  # no atexit: a crash, as far as the store can tell
    """
)


def _crashed_run(store_dir: Path, how: str) -> str:
    """A run written by a process that is now gone; ``how`` is 'crash' or 'finish'."""
    done = subprocess.run(
        [sys.executable, "-c", CRASHED_WRITER, str(store_dir), how],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _tear(journal: Path) -> bytes:
    """Append the first half of a valid metrics record, as a crash mid-write would."""
    record = dumps({"op": "metrics", "key": "loss", "step": [10, 11], "value": [9.0, 9.5]})
    half = record[: len(record) // 2]
    with open(journal, "ab") as handle:
        handle.write(half)
    return half


def _strict_records(journal: Path) -> list[dict]:
    """Every line of the journal, which must be complete, valid JSON."""
    data = journal.read_bytes()
    assert data.endswith(b"\n"), "the journal ends in a torn record"
    return [orjson.loads(line) for line in data.splitlines()]


def _loss_history(store: Store, run_id: str) -> list[tuple[int, float]]:
    steps, values, _ = store.metric_history(run_id, "loss")
    return list(zip(steps, values, strict=True))


EXPECTED = [(s, 1.0 / (s + 1)) for s in range(10)]


@pytest.mark.timeout(120)
def test_torn_journal_tail_of_a_crashed_run_is_skipped_and_mended(store_dir):
    run_id = _crashed_run(store_dir, "crash")
    journal = store_dir / "runs" / run_id / "journal.jsonl"
    complete = _strict_records(journal)
    _tear(journal)

    with pytest.warns(TornRecordWarning, match="incomplete last record"):
        assert list(read_records(journal)) == complete

    # Opening the store reads past the torn record, mends it, and reaps the dead run.
    with pytest.warns(TornRecordWarning):
        store = Store(store_dir)
    try:
        assert _strict_records(journal)[: len(complete)] == complete
        row = store.get_run(run_id)
        assert row["status"] == "KILLED" and row["end_time"] is not None
        assert row["params"] == {"lr": "0.1", "depth": "3"}
        with warnings.catch_warnings():
            warnings.simplefilter("error", TornRecordWarning)  # nothing torn is left
            assert _loss_history(store, run_id) == EXPECTED
            assert row["metrics"]["loss"][:2] == [0.1, 9]
            report = doctor(store, progress=False)
        assert report.healthy and not report.torn, str(report)
    finally:
        store.close()


@pytest.mark.timeout(120)
def test_doctor_mends_a_torn_tail_and_later_appends_are_valid(store_dir, tracking):
    run_id = _crashed_run(store_dir, "finish")
    journal = store_dir / "runs" / run_id / "journal.jsonl"
    complete = _strict_records(journal)
    _tear(journal)

    store = fluent.current_store()
    with pytest.warns(TornRecordWarning):
        assert _loss_history(store, run_id) == EXPECTED  # the run is readable as it is
    assert tracking.get_run(run_id).info.status == "FINISHED"
    assert tracking.get_run(run_id).data.params == {"lr": "0.1", "depth": "3"}

    with pytest.warns(TornRecordWarning, match="removed"):
        report = tracking.doctor(progress=False)
    assert report.torn == [run_id] and report.healthy, str(report)
    assert _strict_records(journal) == complete

    with warnings.catch_warnings():
        warnings.simplefilter("error", TornRecordWarning)
        tracking.log_params({"late": 1}, run_id=run_id)
        with tracking.start_run(run_id=run_id):  # resume the run and log more
            tracking.log_metric("loss", 1.0 / 11, step=10)
        records = _strict_records(journal)
        assert records[: len(complete)] == complete
        assert _loss_history(store, run_id) == [*EXPECTED, (10, 1.0 / 11)]
    assert tracking.get_run(run_id).data.params["late"] == "1"
    assert tracking.get_run(run_id).info.status == "FINISHED"


@pytest.mark.timeout(120)
def test_appends_after_a_torn_tail_never_follow_the_broken_line(store_dir, tracking):
    """Without a doctor in between, the store's own writes mend the tail before appending."""
    run_id = _crashed_run(store_dir, "finish")
    journal = store_dir / "runs" / run_id / "journal.jsonl"
    complete = _strict_records(journal)

    # Resuming a run (a new writer on its journal) must not glue its first record to the
    # torn line, or that record (status RUNNING and the new process) is lost.
    _tear(journal)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        with tracking.start_run(run_id=run_id):
            tracking.log_metric("loss", 1.0 / 11, step=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TornRecordWarning)
        records = _strict_records(journal)
        assert records[: len(complete)] == complete
        resumed = [r for r in records if r["op"] == "set" and r["fields"]["status"] == "RUNNING"]
        assert len(resumed) == 1, "the record that resumed the run was lost"
        assert _loss_history(fluent.current_store(), run_id) == [*EXPECTED, (10, 1.0 / 11)]

    # Logging to an ended run (no writer: a direct journal append) mends it too.
    before = _strict_records(journal)
    _tear(journal)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        tracking.log_params({"late": 2}, run_id=run_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TornRecordWarning)
        records = _strict_records(journal)
        assert records[: len(before)] == before
        assert records[-1] == {"op": "params", "params": {"late": "2"}}
    assert tracking.get_run(run_id).data.params["late"] == "2"


# -- a torn tail of the catalog's change log ------------------------------------------------


def _log_lines(store_dir: Path) -> list[dict]:
    data = (store_dir / CHANGELOG_NAME).read_bytes()
    assert data.endswith(b"\n"), "catalog.log ends in a partial record"
    return [orjson.loads(line) for line in data.splitlines()]


@pytest.mark.timeout(120)
def test_torn_catalog_log_tail_is_ignored_then_truncated_by_the_next_commit(store_dir):
    with Store(store_dir) as first:
        first.create_experiment("before")
        writer = first.create_run("0", run_name="r1", user_id="u", tags={"t": "1"})
        first.log_params(writer.run_id, {"p": "1"})
        first.finish_run(writer.run_id, "FINISHED")
        first.flush()
        run_id = writer.run_id
    complete = _log_lines(store_dir)
    assert complete, "the test needs records in catalog.log"
    garbage = orjson.dumps({"gen": complete[-1]["gen"], "table": "experiments", "id": "9"})
    with open(store_dir / CHANGELOG_NAME, "ab") as handle:  # a crash mid-commit
        handle.write(garbage[:-7])

    second = Store(store_dir)
    third = None
    try:
        # Every complete record is seen; the partial one is not.
        assert [e["name"] for e in second.experiments()] == ["Default", "before"]
        row = second.get_run(run_id)
        assert (row["status"], row["params"], row["tags"]["t"]) == ("FINISHED", {"p": "1"}, "1")

        second.create_experiment("after")  # the next commit cuts the garbage off
        lines = _log_lines(store_dir)
        assert lines[: len(complete)] == complete
        assert lines[-1]["patch"]["set"]["name"] == "after"

        # Other processes' commits after the repair are read correctly by both sides.
        third = Store(store_dir)
        assert [e["name"] for e in third.experiments()] == ["Default", "before", "after"]
        third.create_experiment("from-third")
        third.create_experiment("from-third-too")
        names = ["Default", "before", "after", "from-third", "from-third-too"]
        assert [e["name"] for e in second.experiments()] == names
        second.create_experiment("from-second-again")
        assert [e["name"] for e in third.experiments()] == [*names, "from-second-again"]
        _log_lines(store_dir)
        assert doctor(third, progress=False).healthy
    finally:
        second.close()
        if third is not None:
            third.close()
