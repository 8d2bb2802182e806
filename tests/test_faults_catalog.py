"""Faults of the catalog and of the store's disk, made for real: a catalog snapshot cut short
or overwritten, a garbage record in its change log, a store on a read-only mount.

A damaged catalog is noticed, warned about in one line, and rebuilt from the journals with
nothing lost (``nbtrack doctor --rebuild`` always works). A read-only store reads as any
other and refuses writes with an error that names it.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from nbtrack.errors import StoreError
from nbtrack.store import Store
from nbtrack.store.catalog import CHANGELOG_NAME, SNAPSHOT_NAME
from nbtrack.tracking.session import close_stores

DAMAGED = r"catalog of the store .* is damaged \(.*\); rebuilding it from the run journals"


# -- a store with something in it ------------------------------------------------------------


def _populate(tracking, store_dir: Path) -> dict[str, dict]:
    """Runs in two experiments, with params, tags, metric histories (NaN included) and a
    deleted run; returns what each run should read back as."""
    tracking.set_tracking_uri(store_dir)
    expected = {}
    for experiment in ("Default", "churn"):
        tracking.set_experiment(experiment)
        for i in range(3):
            with tracking.start_run(run_name=f"{experiment}-{i}") as run:
                tracking.log_params({"lr": str(0.1 * (i + 1)), "depth": str(i)})
                tracking.set_tags({"team": experiment})
                for step in range(4):
                    tracking.log_metric("loss", 1.0 / (step + 1 + i), step=step)
                tracking.log_metric("diverged", math.nan if i == 2 else float(i))
            expected[run.info.run_id] = {
                "experiment": experiment,
                "name": f"{experiment}-{i}",
                "params": {"lr": str(0.1 * (i + 1)), "depth": str(i)},
                "loss": [1.0 / (step + 1 + i) for step in range(4)],
            }
    tracking.delete_run(run.info.run_id)
    expected[run.info.run_id]["deleted"] = True
    tracking.flush()
    close_stores()  # every store closed: what is on disk is all there is
    return expected


@pytest.fixture
def populated(tracking, tmp_path: Path) -> tuple[Path, dict[str, dict]]:
    store_dir = tmp_path / "faulty"
    return store_dir, _populate(tracking, store_dir)


def _check_everything_is_there(store: Store, expected: dict[str, dict]) -> None:
    names = {e["name"] for e in store.experiments()}
    assert names == {"Default", "churn"}
    assert {row["run_id"] for row in store.runs()} == set(expected)
    for run_id, want in expected.items():
        row = store.get_run(run_id)
        assert row["run_name"] == want["name"]
        assert row["params"] == want["params"]
        assert row["status"] == "FINISHED"
        assert row["lifecycle_stage"] == ("deleted" if want.get("deleted") else "active")
        assert store.get_experiment(row["experiment_id"])["name"] == want["experiment"]
        assert row["metrics"]["loss"][:2] == [want["loss"][-1], 3]
        assert list(store.metric_history(run_id, "loss")[1]) == want["loss"]
    active = store.search(None, "metrics.loss < 1 and params.depth != '9'")
    assert sorted(active.run_ids()) == sorted(
        i for i, w in expected.items() if not w.get("deleted")
    )


# -- a damaged catalog is rebuilt, with a warning ------------------------------------------------


def _cut_short(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _emptied(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _text(path: Path) -> None:
    path.write_text('{"runs": "this is not the catalog you are looking for"}\n')


@pytest.mark.parametrize("damage", [_cut_short, _emptied, _garbage, _text])
def test_a_damaged_snapshot_is_rebuilt_from_the_journals_when_the_store_opens(
    populated, damage
) -> None:
    store_dir, expected = populated
    damage(store_dir / SNAPSHOT_NAME)

    with pytest.warns(UserWarning, match=DAMAGED) as caught, Store(store_dir) as store:
        _check_everything_is_there(store, expected)
    messages = [str(w.message) for w in caught if "damaged" in str(w.message)]
    assert len(messages) == 1 and "\n" not in messages[0]  # one line, once

    with warnings.catch_warnings(record=True) as later, Store(store_dir) as store:
        _check_everything_is_there(store, expected)  # the rebuilt catalog was written
    assert not [w for w in later if "damaged" in str(w.message)]


def test_a_garbage_record_inside_the_change_log_is_damage(populated) -> None:
    store_dir, expected = populated
    with Store(store_dir) as store:  # one more change, so the log has records to spoil
        run_id = next(iter(expected))
        store.append(run_id, [{"op": "tags", "tags": {"note": "kept"}}])
    log = store_dir / CHANGELOG_NAME
    lines = log.read_bytes().splitlines(keepends=True)
    assert lines, "the test needs records in the change log"
    log.write_bytes(b"".join([b'{"gen": oops, not json}\n', *lines]))

    with pytest.warns(UserWarning, match=DAMAGED), Store(store_dir) as store:
        _check_everything_is_there(store, expected)
        assert store.get_run(run_id)["tags"]["note"] == "kept"  # from the journal


def test_a_torn_last_record_of_the_change_log_is_not_damage(populated) -> None:
    store_dir, expected = populated
    with open(store_dir / CHANGELOG_NAME, "ab") as log:  # a writer died mid-commit
        log.write(b'{"gen":1,"table":"runs","id":"x","patch":{"set":{"stat')
    with warnings.catch_warnings(record=True) as caught, Store(store_dir) as store:
        warnings.simplefilter("always")
        _check_everything_is_there(store, expected)
    assert not [w for w in caught if "damaged" in str(w.message)]


def test_damage_made_while_a_store_is_open_is_rebuilt_at_its_next_read(populated) -> None:
    store_dir, expected = populated
    with Store(store_dir) as store:
        _check_everything_is_there(store, expected)
        replacement = store_dir / "garbage.tmp"
        replacement.write_bytes(os.urandom(2048))
        replacement.replace(store_dir / SNAPSHOT_NAME)  # another process's doing
        with pytest.warns(UserWarning, match=DAMAGED):
            _check_everything_is_there(store, expected)


def test_a_damaged_runs_part_is_found_when_the_runs_are_first_read(populated) -> None:
    store_dir, expected = populated
    with Store(store_dir):
        pass  # folds nothing; the snapshot holds every run
    path = store_dir / SNAPSHOT_NAME
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # inside the runs' arrays, the last part of the file
    path.write_bytes(bytes(data))

    with pytest.warns(UserWarning, match=DAMAGED), Store(store_dir) as store:
        _check_everything_is_there(store, expected)


def _cli(store_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBTRACK_", "MLFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "nbtrack.cli", "--store", str(store_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_doctor_rebuild_works_on_a_damaged_catalog(populated) -> None:
    store_dir, expected = populated
    _garbage(store_dir / SNAPSHOT_NAME)
    (store_dir / CHANGELOG_NAME).write_bytes(b"not a record\n")

    result = _cli(store_dir, "doctor", "--rebuild")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "catalog rebuilt from the journals" in result.stdout
    assert "damaged" in result.stderr  # the warning, on stderr
    listed = _cli(store_dir, "runs")
    assert listed.returncode == 0, listed.stderr
    assert "(5 runs)" in listed.stdout  # every active run, in every experiment
    with warnings.catch_warnings(record=True) as caught, Store(store_dir) as store:
        _check_everything_is_there(store, expected)
    assert not [w for w in caught if "damaged" in str(w.message)]


# -- a read-only store ---------------------------------------------------------------------------


@pytest.fixture
def read_only(tmp_path: Path):
    """Make a folder read-only for this process and return where to read it: a read-only
    bind mount when root (chmod does not stop root), else permissions; undone after."""
    mounts: list[Path] = []
    chmodded: list[Path] = []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)
                chmodded.append(path)
            return folder
        target = tmp_path / f"read-only-{len(mounts)}"
        target.mkdir()
        bound = subprocess.run(["mount", "--bind", str(folder), str(target)], capture_output=True)
        if bound.returncode != 0:
            pytest.skip(f"cannot bind-mount as root here: {bound.stderr.decode().strip()}")
        mounts.append(target)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        return target

    yield make
    close_stores()  # the fluent API's stores hold files open on the mount
    for target in reversed(mounts):
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(target)], check=True)
    for path in chmodded:
        path.chmod(path.stat().st_mode | 0o200)


def test_a_read_only_store_reads_as_any_other(populated, read_only, tracking) -> None:
    store_dir, expected = populated
    ro = read_only(store_dir)
    before = {p.name: p.stat().st_mtime_ns for p in store_dir.iterdir()}

    with Store(ro) as store:
        assert store.writable is False
        _check_everything_is_there(store, expected)

    tracking.set_tracking_uri(ro)
    frame = tracking.search_runs(search_all_experiments=True, order_by=["params.lr ASC"])
    assert set(frame["run_id"]) == {i for i, w in expected.items() if not w.get("deleted")}
    run_id = frame["run_id"][0]
    assert tracking.get_run(run_id).data.params == expected[run_id]["params"]
    history = tracking.get_metric_history(run_id, "loss")
    assert [m.value for m in history] == expected[run_id]["loss"]
    assert {e.name for e in tracking.search_experiments()} == {"Default", "churn"}
    table = tracking.runs_table(search_all_experiments=True)
    assert table.total == 5
    assert {p.name: p.stat().st_mtime_ns for p in store_dir.iterdir()} == before


def test_the_command_line_reads_a_read_only_store(populated, read_only) -> None:
    store_dir, _ = populated
    ro = read_only(store_dir)
    listed = _cli(ro, "runs", "params.depth = '1'")
    assert listed.returncode == 0, listed.stderr
    assert "Default-1" in listed.stdout and "churn-1" in listed.stdout
    shown = _cli(ro, "show", "Default-0")
    assert shown.returncode == 0, shown.stderr
    assert "lr" in shown.stdout
    experiments = _cli(ro, "experiments")
    assert experiments.returncode == 0, experiments.stderr
    assert "churn" in experiments.stdout


def test_writing_to_a_read_only_store_is_a_clear_error(populated, read_only, tracking) -> None:
    from nbtrack import MlflowClient
    from nbtrack.errors import StoreReadOnlyError

    store_dir, expected = populated
    ro = read_only(store_dir)
    tracking.set_tracking_uri(ro)
    run_id = next(iter(expected))

    attempts = {
        "start_run": lambda: tracking.start_run(run_name="nope"),
        "resume a run": lambda: tracking.start_run(run_id=run_id),
        "new experiment": lambda: tracking.set_experiment("brand-new"),
        "set_tag": lambda: MlflowClient(tracking_uri=str(ro)).set_tag(run_id, "k", "v"),
        "log_param": lambda: MlflowClient(tracking_uri=str(ro)).log_param(run_id, "new", "1"),
        "delete_run": lambda: tracking.delete_run(run_id),
    }
    for what, attempt in attempts.items():
        with pytest.raises(StoreReadOnlyError) as caught:
            attempt()
        message = str(caught.value)
        assert str(ro) in message and "read-only" in message, (what, message)
        assert isinstance(caught.value, StoreError)
    assert tracking.active_run() is None
    with Store(ro) as store:
        _check_everything_is_there(store, expected)


def test_a_read_only_store_with_a_damaged_catalog_is_read_from_its_journals(
    populated, read_only
) -> None:
    store_dir, expected = populated
    _garbage(store_dir / SNAPSHOT_NAME)
    ro = read_only(store_dir)
    with pytest.warns(UserWarning, match=DAMAGED), Store(ro) as store:
        _check_everything_is_there(store, expected)
    assert not (store_dir / SNAPSHOT_NAME).read_bytes().startswith(b"nbtrack")  # untouched
