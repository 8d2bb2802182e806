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
import textwrap
from pathlib import Path

import orjson
import pytest

from nbtrack.errors import StoreError, StoreWriteError
from nbtrack.store import Store
from nbtrack.store.catalog import CHANGELOG_NAME, SNAPSHOT_NAME
from nbtrack.store.recovery import rebuild

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
        assert "catalog (catalog.json)" in str(raised.value)
        assert "unchanged" in str(raised.value)
    assert (store_dir / SNAPSHOT_NAME).read_bytes() == before
    assert not list(store_dir.glob(".catalog.json.*")), "a half-written snapshot was left"
    rebuilt = cli(store_dir, "doctor", "--rebuild")
    assert rebuilt.returncode == 2 and "No space left" in rebuilt.stderr
    assert "Traceback" not in rebuilt.stderr
    filler.unlink()
    rebuilt = cli(store_dir, "doctor", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert_healthy(store_dir)
