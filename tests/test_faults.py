"""Faults, in the style of the crash test: a full disk, a rebuild under live writers, torn files.

- A full disk is a real one: a 2 MiB tmpfs mounted for the test (root only; skipped,
  with the reason, where mounting is impossible) and filled by a file beside the store.
- ``nbtrack doctor --rebuild`` runs as its own process while two other processes log.
- Journals cut at random points (hypothesis) keep every complete record before the cut.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbtrack.errors import StoreError, StoreWriteError
from nbtrack.store import Store, doctor
from nbtrack.store.catalog import CHANGELOG_NAME, SNAPSHOT_NAME, CatalogStorage
from nbtrack.store.journal import Journal, TornRecordWarning, dumps, read_records, repair_tail
from nbtrack.store.locking import StoreLock
from nbtrack.store.records import metric_records
from nbtrack.store.recovery import rebuild
from process_helpers import paused_child

pytestmark = pytest.mark.slow  # a small tmpfs filled up, child processes

PAGE = 4096  # tmpfs hands out space a page at a time


# -- a disk that fills up ------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs, unmounted after the test."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip(f"mounting a tmpfs needs root; these tests run as uid {os.geteuid()}")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)  # a child still holds it


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; delete it to give the space back."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 16, PAGE, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def strict_records(journal: Path) -> list[dict]:
    """Every line of a journal parsed, failing on any broken line (read_records skips them)."""
    data = journal.read_bytes()
    assert data.endswith(b"\n"), f"{journal} does not end at a record boundary"
    return [orjson.loads(line) for line in data.splitlines()]


def cli(store_dir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nbtrack.cli", "--store", str(store_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def assert_healthy(store_dir: Path) -> str:
    checked = cli(store_dir, "doctor")
    assert checked.returncode == 0 and "store is healthy" in checked.stdout, (
        checked.stdout + checked.stderr
    )
    return checked.stdout


@pytest.mark.timeout(120)
def test_full_disk_flush_raises_a_clear_error_and_a_later_flush_writes_the_points(
    small_disk: Path, tracking
) -> None:
    store_dir = small_disk / "store"
    tracking.set_tracking_uri(store_dir)
    run = tracking.start_run(run_name="diverging")
    tracking.log_metric("loss", 0.0, step=0)
    tracking.flush()
    filler = fill(small_disk)
    for step in range(1, 20_001):  # ~0.5 MB of journal: more than any page's slack
        tracking.log_metric("loss", step / 10, step=step)
    with pytest.raises(StoreWriteError) as raised:
        tracking.flush()
    error = raised.value
    assert isinstance(error, StoreError) and isinstance(error, OSError)
    assert error.errno == errno.ENOSPC
    message = str(error)
    for words in (str(store_dir), run.info.run_id, "journal", "No space left on device"):
        assert words in message
    assert "on disk" in message and "call flush() again" in message
    assert "\n" not in message  # the exit hook prints it as one line
    # The failed append was taken back whole: the journal still ends at a record boundary.
    journal = store_dir / "runs" / run.info.run_id / "journal.jsonl"
    assert [r["op"] for r in strict_records(journal)][-1] == "metrics"

    filler.unlink()
    tracking.flush()  # the buffered points, written now
    tracking.end_run()
    tracking.flush()  # other processes see the end at once
    history = tracking.get_metric_history(run.info.run_id, "loss")
    assert list(history.steps) == list(range(20_001))
    assert list(history.values) == [step / 10 for step in range(20_001)]
    strict_records(journal)
    assert_healthy(store_dir)
    reader = cli(store_dir, "runs")
    assert "2000" in reader.stdout and "FINISHED" in reader.stdout, reader.stdout


# A process that fills the disk, logs, catches flush()'s error, then exits with the run
# active: the exit hook must say in one line what it could not write, and nothing else.
EXITING = textwrap.dedent(
    """
    import contextlib, json, os, sys
    import nbtrack
    from nbtrack.errors import StoreWriteError

    store, disk = sys.argv[1], sys.argv[2]
    nbtrack.set_tracking_uri(store)
    run = nbtrack.start_run(run_name="doomed")
    nbtrack.log_metric("loss", 0.5, step=0)
    nbtrack.flush()
    fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for size in (1 << 16, 4096, 1):
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, bytes(size))
    for step in range(1, 20_001):
        nbtrack.log_metric("loss", step / 10, step=step)
    try:
        nbtrack.flush()
    except StoreWriteError as error:
        print(json.dumps({"run_id": run.info.run_id, "error": str(error)}), flush=True)
    """
)


@pytest.mark.timeout(120)
def test_exit_on_a_full_disk_prints_one_line_and_no_traceback(small_disk: Path) -> None:
    store_dir = small_disk / "store"
    child = subprocess.run(
        [sys.executable, "-c", EXITING, str(store_dir), str(small_disk)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    reported = json.loads(child.stdout)
    assert "Traceback" not in child.stderr, child.stderr
    exit_lines = [line for line in child.stderr.splitlines() if line.startswith("nbtrack:")]
    assert len(exit_lines) == 1, child.stderr
    [line] = exit_lines
    assert reported["run_id"] in line and str(store_dir) in line and "No space left" in line
    # Nothing else on stderr but, at most, the background flusher's one warning.
    others = [line for line in child.stderr.splitlines() if line.strip() and line not in exit_lines]
    assert len(others) <= 2 and all("could not flush" in x or "warn" in x for x in others), others

    (small_disk / "filler").unlink()
    with Store(store_dir) as store:  # the run's process is gone: the open marks it KILLED
        row = store.get_run(reported["run_id"])
        assert row["status"] == "KILLED"
        steps, values, _ = store.metric_history(reported["run_id"], "loss")
        assert list(steps) == [0] and list(values) == [0.5]  # flushed before the disk filled
    strict_records(store_dir / "runs" / reported["run_id"] / "journal.jsonl")
    assert_healthy(store_dir)


def _pad_log_to_page(store: Store, run_id: str) -> None:
    """Log tags to ``run_id`` until the catalog's log ends at a page boundary, so that its
    next commit needs a new page (each append commits one line for its one record)."""
    log = store.root / CHANGELOG_NAME
    store.append(run_id, [{"op": "tags", "tags": {"pad": ""}}])
    before = log.stat().st_size
    store.append(run_id, [{"op": "tags", "tags": {"pad": ""}}])
    empty = log.stat().st_size - before  # the length of a line whose tag value is ""
    missing = -log.stat().st_size % PAGE
    if missing < empty:
        missing += PAGE
    store.append(run_id, [{"op": "tags", "tags": {"pad": "x" * (missing - empty)}}])
    assert log.stat().st_size % PAGE == 0


def _finished_run(store: Store, name: str) -> str:
    writer = store.create_run("0", run_name=name, user_id="u", tags={})
    store.finish_run(writer.run_id, "FINISHED")
    return writer.run_id


@pytest.mark.timeout(120)
def test_full_disk_at_a_catalog_commit_names_the_catalog_and_commits_later(
    small_disk: Path,
) -> None:
    store_dir = small_disk / "store"
    with Store(store_dir) as store:
        run_id, padding = _finished_run(store, "r"), _finished_run(store, "padding")
        store.flush()
        _pad_log_to_page(store, padding)
        journal = store.journal_path(run_id)
        assert journal.stat().st_size < PAGE - 200  # its page has room for another record
        filler = fill(small_disk)
        with pytest.raises(StoreWriteError) as raised:
            store.set_lifecycle(run_id, "deleted")
        message = str(raised.value)
        assert "catalog (catalog.log)" in message and str(store_dir) in message
        assert "journals hold what was logged" in message and "flush() again" in message
        # The journal (the truth) has the change and this process sees it; others not yet.
        assert strict_records(journal)[-1]["fields"]["lifecycle_stage"] == "deleted"
        assert store.get_run(run_id)["lifecycle_stage"] == "deleted"
        assert run_id[:8] not in cli(store_dir, "runs", "--deleted").stdout

        filler.unlink()
        store.flush()  # the change waited in this process: committed now
    assert run_id[:8] in cli(store_dir, "runs", "--deleted").stdout
    assert_healthy(store_dir)


@pytest.mark.timeout(120)
def test_full_disk_during_a_rebuild_leaves_the_catalog_and_no_temp_file(
    small_disk: Path,
) -> None:
    store_dir = small_disk / "store"
    with Store(store_dir) as store:
        _finished_run(store, "r")
        store.flush()
    before = (store_dir / SNAPSHOT_NAME).read_bytes()
    filler = fill(small_disk)
    with Store(store_dir) as store:
        with pytest.raises(StoreWriteError) as raised:
            rebuild(store, progress=False)
        assert f"catalog ({SNAPSHOT_NAME})" in str(raised.value)
        assert "unchanged" in str(raised.value)
    assert (store_dir / SNAPSHOT_NAME).read_bytes() == before
    assert not list(store_dir.glob(f".{SNAPSHOT_NAME}.*")), "a half-written snapshot was left"
    rebuilt = cli(store_dir, "doctor", "--rebuild")
    assert rebuilt.returncode == 2 and "No space left" in rebuilt.stderr
    assert "Traceback" not in rebuilt.stderr
    filler.unlink()
    rebuilt = cli(store_dir, "doctor", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert_healthy(store_dir)


# -- doctor --rebuild while two processes log ---------------------------------------------------

CHECKS = 5
EARLIER = 1500

# What the loggers log and the test expects: pure functions of (worker, index, step).
LOGGED = textwrap.dedent(
    """
    STEPS = 30

    def value(key, worker, index, step):
        return {"loss": 1.0 / (1 + step + index), "acc": step / 64 + worker}[key]

    def params(worker, index):
        return {"worker": str(worker), "index": str(index)}

    def tags(worker, index):
        return {"parity": "even" if index % 2 == 0 else "odd"}
    """
)
_logged: dict = {}
exec(LOGGED, _logged)

# A logger: runs until the stop file appears (at least three runs), each with params, a
# metric loop, a tag and an end, then flushes. It checks its own view of each run it
# ended, and of all of them at the end, then writes the ids of its runs.
LOGGER = LOGGED + textwrap.dedent(
    """
    import json, os, sys, time
    import nbtrack

    store, worker, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    nbtrack.set_tracking_uri(store)

    def check(index, run_id):
        seen = nbtrack.get_run(run_id)
        assert seen.info.status == "FINISHED", (run_id, seen.info)
        assert seen.data.params == params(worker, index), (run_id, seen.data.params)
        for key in ("loss", "acc"):
            assert seen.data.metrics[key] == value(key, worker, index, STEPS - 1), run_id

    ids = []
    while len(ids) < 3 or not os.path.exists(os.path.join(folder, "stop")):
        index = len(ids)
        with nbtrack.start_run(run_name=f"w{worker}-r{index}") as run:
            nbtrack.log_params(params(worker, index))
            for step in range(STEPS):
                nbtrack.log_metric("loss", value("loss", worker, index, step), step=step)
                nbtrack.log_metric("acc", value("acc", worker, index, step), step=step)
                if index % 3 == 0:  # a slow run: a rebuild reads it half-written
                    time.sleep(0.02)
            nbtrack.set_tags(tags(worker, index))
        ids.append(run.info.run_id)
        check(index, run.info.run_id)
        nbtrack.flush()  # committed at once, as often as a logger can
        if index == 2:
            open(os.path.join(folder, f"ready-{worker}"), "w").close()
    # Once more, after the last rebuild: while this process lives, nothing else (such as
    # marking its runs KILLED when it is gone) can mend what a rebuild lost.
    for index, run_id in enumerate(ids):
        check(index, run_id)
    with open(os.path.join(folder, f"runs-{worker}.json"), "w") as handle:
        json.dump(ids, handle)
    """
)


def _wait_for(paths: list[Path], procs: list[subprocess.Popen], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"a logger exited early:\n{proc.communicate()[1]}")
        assert time.monotonic() < deadline, "the loggers never got going"
        time.sleep(0.05)


def _check_logged_run(store: Store, run_id: str, worker: int, index: int) -> None:
    row = store.get_run(run_id)
    name = f"w{worker}-r{index}"
    assert (row["run_name"], row["status"], row["lifecycle_stage"]) == (name, "FINISHED", "active")
    assert row["params"] == _logged["params"](worker, index)
    assert row["tags"]["parity"] == _logged["tags"](worker, index)["parity"]
    assert row["tags"]["mlflow.runName"] == name
    assert row["end_time"] is not None
    steps = list(range(_logged["STEPS"]))
    for key in ("loss", "acc"):
        expected = [_logged["value"](key, worker, index, step) for step in steps]
        assert row["metrics"][key][:2] == [expected[-1], steps[-1]], (run_id, key)
        logged_steps, values, _ = store.metric_history(run_id, key)
        assert list(logged_steps) == steps and list(values) == expected, (run_id, key)


@pytest.mark.timeout(300)
def test_rebuild_while_two_processes_log_loses_no_run_and_no_point(tmp_path: Path) -> None:
    store_dir, folder = tmp_path / "store", tmp_path / "coordination"
    folder.mkdir()
    with Store(store_dir) as store:  # enough runs that folding them all takes a while
        earlier = {_finished_run(store, f"earlier-{i}") for i in range(EARLIER)}
    loggers = [
        subprocess.Popen(
            [sys.executable, "-c", LOGGER, str(store_dir), str(worker), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in (0, 1)
    ]
    try:
        _wait_for([folder / "ready-0", folder / "ready-1"], loggers)
        for _ in range(CHECKS):  # live runs are neither damage nor drift
            assert_healthy(store_dir)
            rebuilt = cli(store_dir, "doctor", "--rebuild")
            assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        (folder / "stop").touch()
        results = [proc.communicate(timeout=120) for proc in loggers]
    finally:
        for proc in loggers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, (_, err) in zip(loggers, results, strict=True):
        assert proc.returncode == 0, err
    logged = {
        run_id: (worker, index)
        for worker in (0, 1)
        for index, run_id in enumerate(json.loads((folder / f"runs-{worker}.json").read_text()))
    }
    with Store(store_dir) as store:  # a fresh process's view
        assert sorted(r["run_id"] for r in store.runs()) == sorted(earlier | set(logged))
        for run_id, (worker, index) in logged.items():
            _check_logged_run(store, run_id, worker, index)
    assert_healthy(store_dir)


# A process whose run is in its journal but not yet in the catalog (no background commit),
# as in the second after a cell ends; it goes on when told.
LIVE = textwrap.dedent(
    """
    import sys
    import nbtrack
    from nbtrack.store import writer

    writer.FLUSH_INTERVAL_SECONDS = 3600.0
    nbtrack.set_tracking_uri(sys.argv[1])
    run = nbtrack.start_run()
    nbtrack.log_param("a", "1")
    print(run.info.run_id, flush=True)
    sys.stdin.readline()
    nbtrack.log_param("b", "2")
    nbtrack.end_run()
    """
)


@pytest.mark.timeout(120)
def test_doctor_never_cuts_the_journal_of_a_live_run_the_catalog_does_not_know(
    tmp_path: Path,
) -> None:
    """Doctor mends torn tails of dead runs; a live writer's tail is torn only for the
    moment of an append, and cutting it then would glue the rest onto half a record.
    The doctor's store is opened first, so the run is new to it, as a run created while
    doctor runs is."""
    store_dir = tmp_path / "store"
    with Store(store_dir) as checking, paused_child(LIVE, str(store_dir)) as (logger, run_id):
        journal = store_dir / "runs" / run_id / "journal.jsonl"
        complete = journal.read_bytes()
        with open(journal, "ab") as handle:  # the first half of an append in progress
            handle.write(b'{"op":"tags","tags":{"half":')
        during = journal.read_bytes()
        report = doctor(checking, progress=False)
        assert journal.read_bytes() == during, "doctor cut a live run's journal"
        assert report.healthy and not report.torn, str(report)
        assert report.indexed == [run_id]  # from the complete records
        os.truncate(journal, len(complete))  # the test takes its half record back
        _, err = logger.communicate("go\n", timeout=60)
    assert logger.returncode == 0, err
    with Store(store_dir) as store:
        assert store.get_run(run_id)["params"] == {"a": "1", "b": "2"}
    assert_healthy(store_dir)


# -- journals and the catalog's log cut at random points (hypothesis) ---------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # orjson: no surrogates
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_plain_records = st.builds(
    lambda op, fields: {"op": op, **fields}, _text, st.dictionaries(_text, _values, max_size=4)
)
_points = st.lists(
    st.tuples(
        st.sampled_from(["loss", "acc"]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(0, 2**40),
        st.floats(0, 2e12),
    ),
    min_size=1,
    max_size=40,
)
# Plain records and real metric batches (packed columns: long lines).
_journal_records = st.lists(
    _plain_records | _points.map(lambda points: metric_records([x for p in points for x in p])),
    min_size=1,
    max_size=8,
).map(lambda items: [r for item in items for r in (item if isinstance(item, list) else [item])])


# Lines of random bytes, or of JSON that is no record, the last one complete or not.
_garbage = st.builds(
    lambda lines, ended: b"\n".join(lines) + b"\n" * ended,
    st.lists(
        st.binary(max_size=24) | st.sampled_from([b"1", b"{}", b"null", b"[1]", b'"op"', b"{"]),
        max_size=4,
    ),
    st.booleans(),
)


def _complete_before(data: bytes, cut: int) -> int:
    """How many whole lines (newline included) ``data[:cut]`` holds."""
    return data[:cut].count(b"\n")


def _quiet_read(path: Path) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornRecordWarning)
        return list(read_records(path))


def _cut_point(draw, data: bytes) -> int:
    """Any byte offset, or (as often) the end of a line, where garbage starts a line."""
    ends = [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    return draw(st.integers(0, len(data)) | st.sampled_from([0, *ends]))


@settings(max_examples=300, deadline=None)
@given(
    records=_journal_records,
    garbage=_garbage,
    new=st.lists(_plain_records, min_size=1, max_size=3),
    draw=st.data(),
)
def test_a_journal_cut_anywhere_keeps_every_complete_record_and_mends_for_appends(
    records: list[dict], garbage: bytes, new: list[dict], draw
) -> None:
    data = b"".join(dumps(r) for r in records)
    at = _cut_point(draw.draw, data)
    kept = _complete_before(data, at)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "journal.jsonl"
        path.write_bytes(data[:at] + garbage)
        expected = [orjson.loads(dumps(r)) for r in records[:kept]]  # as JSON gives them back
        read = _quiet_read(path)
        assert read[:kept] == expected  # garbage may add lines, never take any
        assert all(isinstance(r, dict) for r in read), read  # whatever else it holds

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TornRecordWarning)
            repair_tail(path)
        with Journal(path) as journal:
            journal.append_many(new)
        assert path.read_bytes().endswith(b"\n")
        read = _quiet_read(path)
        appended = [orjson.loads(dumps(r)) for r in new]
        assert read[:kept] == expected and read[-len(new) :] == appended
        if b"\n" not in garbage:  # nothing but the torn line was added: it is all gone
            assert strict_records(path) == expected + appended


@settings(max_examples=100, deadline=None)
@given(
    patches=st.lists(st.dictionaries(_text, _text, min_size=1, max_size=3), min_size=1, max_size=6),
    draw=st.data(),
)
def test_the_catalog_log_cut_anywhere_keeps_every_complete_commit_and_mends_on_the_next(
    patches: list[dict[str, str]], draw
) -> None:
    """Each commit is one line patching its own document; a cut loses only the torn one,
    and the next commit (another process's) cuts it off before appending."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        writer = CatalogStorage(root, StoreLock(root / "store.lock"))
        for number, tags in enumerate(patches):
            writer.stage("runs", f"r{number}", {"tags": tags})
            writer.commit()
        log = root / CHANGELOG_NAME
        data = log.read_bytes()
        at = _cut_point(draw.draw, data)
        log.write_bytes(data[:at])
        kept = _complete_before(data, at)

        reader = CatalogStorage(root, StoreLock(root / "store.lock"))
        assert all(d["tags"] == patches[int(i[1:])] for i, d in _documents(reader))
        assert sorted(i for i, _ in _documents(reader)) == sorted(f"r{n}" for n in range(kept))

        reader.stage("runs", "new", {"tags": {"after": "cut"}})
        reader.commit()
        assert log.read_bytes().endswith(b"\n")
        assert all(orjson.loads(line) for line in log.read_bytes().splitlines())
        fresh = CatalogStorage(root, StoreLock(root / "store.lock"))
        assert sorted(i for i, _ in _documents(fresh)) == sorted(
            [f"r{n}" for n in range(kept)] + ["new"]
        )


def _documents(catalog: CatalogStorage) -> list[tuple[str, dict]]:
    return [(doc_id, doc) for doc_id, doc in (catalog.read() or {}).get("runs", {}).items()]
