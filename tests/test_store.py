"""The Store: layout, experiments, runs, artifacts, recovery, doctor and dead-run reaping."""

from __future__ import annotations

import hashlib
import math
import os
import socket
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import orjson
import pytest

from catalog_helpers import edit_catalog
from nbtrack.errors import InvalidParameterError, NotFoundError, RunStateError
from nbtrack.store import DEFAULT_EXPERIMENT_ID, Store, doctor, rebuild
from nbtrack.store.catalog import SNAPSHOT_NAME
from nbtrack.store.journal import TornRecordWarning, dumps, read_records
from nbtrack.store.records import metric_records


def _run(store: Store, name: str = "r", experiment_id: str = "0", **tags: str) -> str:
    return store.create_run(experiment_id, run_name=name, user_id="tester", tags=tags).run_id


def _journal_bytes(store: Store, run_id: str) -> bytes:
    writer = store.writer(run_id)
    if writer is not None:
        writer.flush()
    return store.journal_path(run_id).read_bytes()


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (directories listed as b'<dir>')."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.name == "store.lock":
            continue
        found[path.relative_to(root).as_posix()] = b"<dir>" if path.is_dir() else path.read_bytes()
    return found


def _compact(store_dir: Path) -> None:
    """Fold the catalog's log into its snapshot, as before a hand edit."""
    with Store(store_dir) as opened:
        rebuild(opened, progress=False)


def _edit_snapshot(store_dir: Path, edit) -> None:
    edit_catalog(store_dir, edit)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- layout and experiments ------------------------------------------------------------------


def test_store_creates_its_layout_and_the_default_experiment(store_dir: Path) -> None:
    with Store(store_dir) as store:
        run_id = _run(store)
        store.finish_run(run_id, "FINISHED")
        assert (store_dir / SNAPSHOT_NAME).is_file()
        assert (store_dir / "experiments.jsonl").is_file()
        assert (store_dir / "runs" / run_id / "journal.jsonl").is_file()
        default = store.get_experiment(DEFAULT_EXPERIMENT_ID)
        assert DEFAULT_EXPERIMENT_ID == "0"
        assert default["name"] == "Default"
        assert default["lifecycle_stage"] == "active"
        assert [e["experiment_id"] for e in store.experiments()] == ["0"]
        records = list(read_records(store_dir / "experiments.jsonl"))
        assert [r["id"] for r in records] == ["0"]

    # Reopening does not create a second Default.
    with Store(store_dir) as store:
        assert [e["name"] for e in store.experiments()] == ["Default"]
    assert len(list(read_records(store_dir / "experiments.jsonl"))) == 1


def test_experiment_names_are_unique_deleted_ones_included(store: Store) -> None:
    first = store.create_experiment("churn", {"team": "a"})
    assert first == "1"
    assert store.get_experiment_by_name("churn")["tags"] == {"team": "a"}
    with pytest.raises(
        InvalidParameterError, match="Experiment 'churn' already exists with id '1'"
    ):
        store.create_experiment("churn")

    store.update_experiment(first, lifecycle_stage="deleted")
    with pytest.raises(InvalidParameterError, match=r"already exists \(deleted; restore it"):
        store.create_experiment("churn")
    assert store.create_experiment("churn-2") == "2"
    with pytest.raises(InvalidParameterError, match="already exists"):
        store.update_experiment("2", name="churn")
    with pytest.raises(NotFoundError, match="No experiment with id '42'"):
        store.get_experiment("42")


def test_runs_cannot_be_created_in_a_deleted_experiment(store: Store) -> None:
    experiment_id = store.create_experiment("gone")
    store.update_experiment(experiment_id, lifecycle_stage="deleted")
    before = set(os.listdir(store.root / "runs"))
    with pytest.raises(RunStateError, match="is deleted"):
        _run(store, experiment_id=experiment_id)
    assert set(os.listdir(store.root / "runs")) == before


# -- runs --------------------------------------------------------------------------------------


def test_run_lifecycle_params_tags_metrics_finish(store: Store, store_dir: Path) -> None:
    run_id = _run(store, name="train", team="a")
    row = store.get_run(run_id)
    assert row["status"] == "RUNNING" and row["end_time"] is None
    assert row["run_name"] == "train" and row["user_id"] == "tester"
    assert row["tags"] == {"team": "a"}
    assert row["artifact_uri"] == (store_dir.resolve() / "runs" / run_id / "artifacts").as_uri()

    store.log_params(run_id, {"lr": "0.1", "depth": "6"})
    store.append(run_id, [{"op": "tags", "tags": {"stage": "dev", "gone": "x"}}])
    store.append(run_id, [{"op": "untag", "key": "gone"}])
    store.writer(run_id).points.extend(("loss", 0.5, 0, 1000.0, "loss", 0.25, 1, 2000.0))
    store.log_points(run_id, ["acc", 0.9, 3, 3000.0])
    store.finish_run(run_id, "FINISHED", end_time=5000)

    row = store.get_run(run_id)
    assert row["status"] == "FINISHED" and row["end_time"] == 5000
    assert row["params"] == {"lr": "0.1", "depth": "6"}
    assert row["tags"] == {"team": "a", "stage": "dev"}
    assert row["metrics"] == {"loss": [0.25, 1, 2000], "acc": [0.9, 3, 3000]}
    steps, values, times = store.metric_history(run_id, "loss")
    assert (list(steps), list(values), list(times)) == ([0, 1], [0.5, 0.25], [1000, 2000])
    assert store.writer(run_id) is None  # released

    # After a flush, a second Store (another process) sees the same row.
    store.flush()
    with Store(store_dir) as other:
        assert other.get_run(run_id) == row

    ops = [r["op"] for r in store.records(run_id)]
    assert ops[0] == "create"
    assert {"params", "tags", "untag", "metrics", "set"} <= set(ops)


def test_terminal_status_is_the_last_journal_record(store: Store) -> None:
    # Buffered points belong before the status that ends the run: a reader that sees
    # FINISHED in the journal must already find every point the run logged.
    run_id = _run(store)
    store.writer(run_id).points.extend(("loss", 0.5, 0, 1000.0))
    store.finish_run(run_id, "FINISHED", end_time=5000)
    records = store.records(run_id)
    assert [r["op"] for r in records] == ["create", "metrics", "set"]
    assert records[-1]["fields"] == {"status": "FINISHED", "end_time": 5000}


def test_params_are_immutable(store: Store) -> None:
    run_id = _run(store)
    store.log_params(run_id, {"lr": "0.1"})
    before = _journal_bytes(store, run_id)
    store.log_params(run_id, {"lr": "0.1"})  # the same value again is fine, and a no-op
    assert _journal_bytes(store, run_id) == before

    message = (
        "Changing param values is not allowed. Param with key='lr' was already logged with "
        f"value='0.1' for run ID='{run_id}'. Attempted logging new value '0.2'."
    )
    with pytest.raises(InvalidParameterError) as caught:
        store.log_params(run_id, {"new": "1", "lr": "0.2"})
    assert str(caught.value) == message
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert _journal_bytes(store, run_id) == before  # not even the valid 'new' was written
    assert store.get_run(run_id)["params"] == {"lr": "0.1"}
    store.finish_run(run_id, "FINISHED")


def test_deleted_run_refuses_logging(store: Store) -> None:
    run_id = _run(store)
    store.finish_run(run_id, "FINISHED")
    store.set_lifecycle(run_id, "deleted")
    assert store.get_run(run_id)["lifecycle_stage"] == "deleted"
    before = _journal_bytes(store, run_id)
    with pytest.raises(RunStateError, match="is deleted; restore it"):
        store.append(run_id, [{"op": "tags", "tags": {"a": "b"}}])
    with pytest.raises(RunStateError, match="is deleted"):
        store.log_params(run_id, {"p": "1"})
    with pytest.raises(RunStateError, match="is deleted"):
        store.add_artifact(run_id, "a.txt", b"x")
    with pytest.raises(RunStateError, match="is deleted"):
        store.resume_run(run_id)
    assert _journal_bytes(store, run_id) == before
    assert not store.artifact_dir(run_id).exists()

    store.set_lifecycle(run_id, "active")  # restoring makes it loggable again
    store.append(run_id, [{"op": "tags", "tags": {"a": "b"}}])
    assert store.get_run(run_id)["tags"] == {"a": "b"}


def test_deleted_run_refuses_logging_while_its_writer_is_open(store: Store) -> None:
    run_id = _run(store)
    store.set_lifecycle(run_id, "deleted")
    before = _journal_bytes(store, run_id)
    with pytest.raises(RunStateError, match="is deleted"):
        store.append(run_id, [{"op": "tags", "tags": {"a": "b"}}])
    with pytest.raises(RunStateError, match="is deleted"):
        store.log_params(run_id, {"p": "1"})
    assert _journal_bytes(store, run_id) == before
    store.finish_run(run_id, "KILLED")


def test_resolve_run_by_id_prefix_name_and_last(store: Store) -> None:
    first = _run(store, name="baseline")
    store.finish_run(first, "FINISHED", end_time=None)
    second = _run(store, name="baseline")  # same name, newer
    store.finish_run(second, "FINISHED")
    other = _run(store, name="other")
    store.finish_run(other, "FINISHED")
    for run_id, start in ((first, 1000), (second, 2000), (other, 3000)):
        store.append(run_id, [{"op": "set", "fields": {"start_time": start}}])

    assert store.resolve_run(first)["run_id"] == first
    assert store.resolve_run(first[:8])["run_id"] == first
    assert store.resolve_run("baseline")["run_id"] == second  # the newest of that name
    assert store.resolve_run("last")["run_id"] == other

    store.set_lifecycle(other, "deleted")
    assert store.resolve_run("last")["run_id"] == second  # deleted runs are skipped
    assert store.resolve_run(other)["run_id"] == other  # but a full id still finds them
    with pytest.raises(NotFoundError, match="'other'"):
        store.resolve_run("other")


def test_resolve_run_errors(store_dir: Path) -> None:
    # Two hand-written runs whose ids share a long prefix.
    ids = ["abcd1234" + "0" * 23 + "1", "abcd1234" + "0" * 23 + "2"]
    for run_id in ids:
        folder = store_dir / "runs" / run_id
        folder.mkdir(parents=True)
        create = {
            "run_id": run_id,
            "experiment_id": "0",
            "run_name": "hand",
            "status": "FINISHED",
            "start_time": 1,
            "end_time": 2,
            "lifecycle_stage": "active",
            "user_id": "u",
            "tags": {},
        }
        (folder / "journal.jsonl").write_bytes(dumps({"op": "create", "run": create}))
    with Store(store_dir) as store:
        assert store.resolve_run(ids[1][:-1] + "2")["run_id"] == ids[1]
        with pytest.raises(InvalidParameterError, match="'abcd1234' matches 2 runs"):
            store.resolve_run("abcd1234")
        with pytest.raises(NotFoundError, match="give a run id, an id prefix of 4"):
            store.resolve_run("abc")  # too short to be a prefix
        with pytest.raises(NotFoundError, match="No run 'nope'"):
            store.resolve_run("nope")
        with pytest.raises(NotFoundError, match=f"Run with id={'f' * 32} not found"):
            store.resolve_run("f" * 32)


def test_resolve_last_on_an_empty_store(store: Store) -> None:
    with pytest.raises(NotFoundError, match="No run 'last'"):
        store.resolve_run("last")


# -- artifacts ---------------------------------------------------------------------------------


def test_artifacts_land_under_the_run_with_size_and_sha256(store: Store, tmp_path: Path) -> None:
    run_id = _run(store)
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(3000))
    store.add_artifact(run_id, "models/model.bin", source)
    store.add_artifact(run_id, "notes.txt", "héllo".encode())

    folder = store.artifact_dir(run_id)
    assert folder == store.root / "runs" / run_id / "artifacts"
    assert (folder / "models" / "model.bin").read_bytes() == source.read_bytes()
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "héllo"
    entries = {r["path"]: r for r in store.records(run_id) if r["op"] == "artifact"}
    assert entries["models/model.bin"]["size"] == 3000
    assert entries["models/model.bin"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert entries["notes.txt"]["size"] == len("héllo".encode())
    assert entries["notes.txt"]["sha256"] == hashlib.sha256("héllo".encode()).hexdigest()
    assert not [p for p in folder.rglob("*") if p.name.endswith(".part")]
    store.finish_run(run_id, "FINISHED")


ESCAPING_PATHS = ["../x", "/etc/passwd", "a/../../b", "C:\\x", "..", "a\\..\\..\\b"]


@pytest.mark.parametrize("path", ESCAPING_PATHS)
def test_store_refuses_artifact_paths_that_escape(store: Store, path: str) -> None:
    run_id = _run(store)
    before = _tree(store.root)
    with pytest.raises(InvalidParameterError):
        store.add_artifact(run_id, path, b"payload")
    assert _tree(store.root) == before
    assert not (store.root / "runs" / "x").exists()
    store.finish_run(run_id, "FINISHED")


@pytest.mark.parametrize("path", ESCAPING_PATHS)
def test_fluent_api_refuses_artifact_paths_that_escape(tracking, tmp_path: Path, path: str) -> None:
    local = tmp_path / "local.txt"
    local.write_text("payload")
    with tracking.start_run() as run:
        store_dir = Path(tracking.get_tracking_uri().removeprefix("file://"))
        tracking.flush()  # the new run's catalog row lands now, not during the checks
        before = _tree(store_dir)
        with pytest.raises(InvalidParameterError):
            tracking.log_text("payload", path)
        with pytest.raises(InvalidParameterError):
            tracking.log_artifact(local, artifact_path=path)
        with pytest.raises(InvalidParameterError):
            tracking.log_dict({"a": 1}, path)
        tracking.flush()
        assert _tree(store_dir) == before
        assert not (store_dir / "runs" / run.info.run_id / "x").exists()


def test_symlink_inside_artifacts_pointing_outside_is_refused(store: Store, tmp_path: Path) -> None:
    run_id = _run(store)
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = store.artifact_dir(run_id)
    folder.mkdir(parents=True)
    (folder / "link").symlink_to(outside, target_is_directory=True)
    (folder / "filelink").symlink_to(outside / "target.txt")
    before = _journal_bytes(store, run_id)

    for path in ("link/secret.txt", "link/deeper/x.txt", "filelink"):
        with pytest.raises(InvalidParameterError, match="resolves outside"):
            store.add_artifact(run_id, path, b"payload")
    assert list(outside.iterdir()) == []
    assert _journal_bytes(store, run_id) == before
    store.finish_run(run_id, "FINISHED")


# -- recovery ----------------------------------------------------------------------------------


def _populate(store: Store) -> list[str]:
    experiment_id = store.create_experiment("exp", {"owner": "me"})
    a = _run(store, name="a", team="x")
    store.log_params(a, {"lr": "0.1"})
    store.writer(a).points.extend(
        ("loss", 1.0, 0, 10.0, "loss", float("nan"), 1, 11.0, "acc", 0.5, 0, 10.0)
    )
    store.append(a, [{"op": "untag", "key": "team"}, {"op": "tags", "tags": {"k": "v"}}])
    store.add_artifact(a, "dir/file.txt", b"content")
    store.finish_run(a, "FINISHED")
    b = _run(store, name="b", experiment_id=experiment_id)
    store.log_points(b, ["m", float("inf"), 2, 20.0])
    store.finish_run(b, "FAILED")
    c = _run(store, name="c")
    store.finish_run(c, "KILLED")
    store.set_lifecycle(c, "deleted")
    return [a, b, c]


def _rows(store: Store) -> dict[str, str]:
    # Compare through orjson so NaN == NaN (both become null).
    return {r["run_id"]: orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in store.runs()}


def test_rebuild_after_losing_the_catalog_reproduces_the_rows(store_dir: Path) -> None:
    with Store(store_dir) as store:
        ids = _populate(store)
        rows = _rows(store)
        experiments = store.experiments()
    assert set(rows) == set(ids)
    (store_dir / SNAPSHOT_NAME).unlink()
    (store_dir / "catalog.log").unlink(missing_ok=True)

    with Store(store_dir) as reopened:  # notices the lost catalog and rebuilds it
        assert _rows(reopened) == rows
        assert reopened.experiments() == experiments
        assert reopened.get_run(ids[1])["metrics"]["m"][0] == float("inf")
        assert math.isnan(reopened.get_run(ids[0])["metrics"]["loss"][0])  # step 1 is latest
        assert rebuild(reopened, progress=False) == 3
        assert _rows(reopened) == rows
        assert doctor(reopened, progress=False).healthy


def test_doctor_finds_a_drifted_row_and_rebuild_fixes_it(store_dir: Path) -> None:
    with Store(store_dir) as store:
        run_id = _run(store, name="real")
        store.log_params(run_id, {"lr": "0.1"})
        store.finish_run(run_id, "FINISHED")
        assert doctor(store, progress=False).healthy
    _compact(store_dir)

    def tamper(data: dict) -> None:
        data["runs"][run_id]["status"] = "FAILED"
        data["runs"][run_id]["params"]["lr"] = "9"

    _edit_snapshot(store_dir, tamper)
    with Store(store_dir) as store:
        assert store.get_run(run_id)["status"] == "FAILED"  # the catalog says so...
        report = doctor(store, progress=False)
        assert report.drifted == [run_id]  # ...but the journal disagrees
        assert not report.healthy
        assert "differ from their journal" in str(report)

        fixed = doctor(store, rebuild_catalog=True, progress=False)
        assert fixed.rebuilt
        assert fixed.healthy
        row = store.get_run(run_id)
        assert row["status"] == "FINISHED" and row["params"] == {"lr": "0.1"}
        assert doctor(store, progress=False).drifted == []
    with Store(store_dir) as other:
        assert other.get_run(run_id)["status"] == "FINISHED"


def test_missing_catalog_row_is_indexed_when_the_store_opens(store_dir: Path) -> None:
    with Store(store_dir) as store:
        run_id = _run(store, name="lost")
        store.log_params(run_id, {"p": "1"})
        store.finish_run(run_id, "FINISHED")
    _compact(store_dir)
    _edit_snapshot(store_dir, lambda data: data["runs"].pop(run_id))

    with Store(store_dir) as store:
        row = store.get_run(run_id)
        assert row["run_name"] == "lost" and row["params"] == {"p": "1"}
        assert row["status"] == "FINISHED"
    with Store(store_dir) as other:  # it was committed, not only held in memory
        assert run_id in {r["run_id"] for r in other.runs()}


def test_get_run_indexes_a_run_another_process_has_not_committed(store_dir: Path) -> None:
    with Store(store_dir) as reader:
        writer = Store(store_dir)
        run_id = _run(writer, name="fresh")  # staged in the writer, not yet committed
        assert run_id not in {r["run_id"] for r in reader.runs()}
        assert reader.get_run(run_id)["run_name"] == "fresh"  # found from its journal
        assert run_id in {r["run_id"] for r in reader.runs()}
        writer.finish_run(run_id, "FINISHED")
        writer.close()


def test_missing_catalog_row_is_indexed_by_doctor(store_dir: Path) -> None:
    with Store(store_dir) as store:
        run_id = _run(store, name="lost")
        store.finish_run(run_id, "FINISHED")
        store.flush()
        # The catalog loses the row while this store is open: it re-reads the snapshot.
        _compact(store_dir)
        _edit_snapshot(store_dir, lambda data: data["runs"].pop(run_id))
        assert run_id not in {r["run_id"] for r in store.runs()}

        report = doctor(store, progress=False)
        assert report.indexed == [run_id]
        assert report.healthy
        assert run_id in {r["run_id"] for r in store.runs()}
        assert doctor(store, progress=False).indexed == []


def test_orphan_catalog_row_makes_the_store_unhealthy(store_dir: Path) -> None:
    with Store(store_dir) as store:
        run_id = _run(store)
        store.finish_run(run_id, "FINISHED")
    (store_dir / "runs" / run_id / "journal.jsonl").unlink()
    with Store(store_dir) as store:
        report = doctor(store, progress=False)
        assert report.orphan_rows == [run_id]
        assert not report.healthy
        assert doctor(store, rebuild_catalog=True, progress=False).healthy
        assert store.runs() == []


def test_doctor_reports_changed_and_missing_artifacts(store: Store) -> None:
    run_id = _run(store)
    store.add_artifact(run_id, "a.txt", b"a")
    store.add_artifact(run_id, "b.txt", b"b")
    store.finish_run(run_id, "FINISHED")
    (store.artifact_dir(run_id) / "a.txt").write_bytes(b"changed")
    (store.artifact_dir(run_id) / "b.txt").unlink()
    report = doctor(store, progress=False)
    assert not report.healthy
    assert sorted(report.artifact_problems) == [
        f"{run_id}: artifact a.txt changed since it was logged",
        f"{run_id}: artifact b.txt is missing",
    ]


def test_running_run_with_a_dead_process_is_killed_on_open(store_dir: Path) -> None:
    with Store(store_dir) as store:
        run_id = _run(store, name="crashed")
    # Closing a store leaves its runs RUNNING; our own process is alive, so reopening
    # must not touch the run.
    with Store(store_dir) as store:
        assert store.get_run(run_id)["status"] == "RUNNING"
        dead = {"host": socket.gethostname(), "pid": _dead_pid(), "started": 1.0}
        store.append(run_id, [{"op": "set", "fields": {"process": dead}}])
        assert store.get_run(run_id)["process"] == dead
    journal = store_dir / "runs" / run_id / "journal.jsonl"
    os.utime(journal, (1_700_000_000.25, 1_700_000_000.25))

    with Store(store_dir) as store:
        row = store.get_run(run_id)
        assert row["status"] == "KILLED"
        assert row["end_time"] == 1_700_000_000_250
    last = list(read_records(journal))[-1]
    assert last == {"op": "set", "fields": {"status": "KILLED", "end_time": 1_700_000_000_250}}


def test_running_run_from_another_host_is_left_alone(store_dir: Path) -> None:
    with Store(store_dir) as store:
        run_id = _run(store, name="remote")
    elsewhere = {"host": f"elsewhere-{uuid.uuid4().hex[:6]}.invalid", "pid": 1, "started": 1.0}
    with Store(store_dir) as store:
        store.append(run_id, [{"op": "set", "fields": {"process": elsewhere}}])
    with Store(store_dir) as store:
        assert store.get_run(run_id)["status"] == "RUNNING"
        report = doctor(store, progress=False)
        assert report.unverifiable == [run_id]
        assert report.killed == []
        assert report.healthy
        assert "cannot verify" in str(report)
        assert store.get_run(run_id)["status"] == "RUNNING"


def test_reaping_a_dead_run_cuts_its_torn_last_record_first(store_dir: Path) -> None:
    with Store(store_dir) as store:
        run_id = _run(store)
        dead = {"host": socket.gethostname(), "pid": _dead_pid(), "started": 1.0}
        store.append(run_id, [{"op": "set", "fields": {"process": dead}}])
        store.log_params(run_id, {"kept": "1"})
    journal = store_dir / "runs" / run_id / "journal.jsonl"
    with open(journal, "ab") as handle:  # the process died mid-write
        handle.write(b'{"op":"params","params":{"lr":"0.')

    with pytest.warns(TornRecordWarning) as caught, Store(store_dir) as store:
        row = store.get_run(run_id)
        assert row["status"] == "KILLED"
        assert row["params"] == {"kept": "1"}
    assert any("removed" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = list(read_records(journal))
    assert records[-1]["fields"]["status"] == "KILLED"
    assert records[-2] == {"op": "params", "params": {"kept": "1"}}


def test_metric_records_round_trip_through_a_store_journal(store: Store) -> None:
    run_id = _run(store)
    points = [item for i in range(1000) for item in ("m", float(i), i, 1000.0 + i)]
    store.append(run_id, metric_records(points))
    steps, values, times = store.metric_history(run_id, "m")
    assert list(values) == [float(i) for i in range(1000)]
    assert list(steps) == list(range(1000))
    assert list(times) == [1000 + i for i in range(1000)]
    store.finish_run(run_id, "FINISHED")
