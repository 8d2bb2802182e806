"""The ``nbtrack`` command: runs, show, experiments, doctor and gc, in-process and as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog_helpers import edit_catalog
from model_helpers import store_path
from nbtrack.cli import main
from nbtrack.errors import InvalidParameterError
from nbtrack.store import Store, purge


@pytest.fixture
def populated(tracking, tmp_path: Path) -> dict:
    """A store with three runs in two experiments (one deleted); returns names and ids."""
    store = tmp_path / "cli-store"
    tracking.set_tracking_uri(store)
    ids = {}
    for name, acc, depth in [("alpha", 0.5, 2), ("beta", 0.9, 6)]:
        time.sleep(0.005)  # distinct start times, so "newest first" is well defined
        with tracking.start_run(run_name=name) as run:
            tracking.log_metric("acc", acc)
            tracking.log_param("depth", depth)
        ids[name] = run.info.run_id
    tracking.set_experiment("churn")
    time.sleep(0.005)
    with tracking.start_run(run_name="gamma") as run:
        tracking.log_metric("acc", 0.7)
    ids["gamma"] = run.info.run_id
    with tracking.start_run(run_name="dropped") as run:
        pass
    ids["dropped"] = run.info.run_id
    tracking.delete_run(run.info.run_id)
    tracking.flush()
    return {"store": store, "ids": ids}


def _cli(capsys, store: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--store", str(store), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _names(table: str) -> list[str]:
    rows = table.splitlines()[2:-1]  # skip the header, the rule and the count
    return [row.split()[1] for row in rows]


def test_runs_lists_every_experiment_newest_first(populated, capsys) -> None:
    code, out, err = _cli(capsys, populated["store"], "runs")
    assert code == 0, err
    assert _names(out) == ["gamma", "beta", "alpha"]
    header = out.splitlines()[0].split()
    assert header[:3] == ["run_id", "name", "status"]
    # Metrics before params, the columns runs are compared by first.
    assert header.index("metrics.acc") < header.index("start") < header.index("params.depth")
    assert out.rstrip().endswith("(3 runs)")
    assert populated["ids"]["alpha"][:8] in out


def test_runs_with_a_filter(populated, capsys) -> None:
    code, out, _ = _cli(capsys, populated["store"], "runs", "metrics.acc > 0.6")
    assert code == 0
    assert sorted(_names(out)) == ["beta", "gamma"]
    code, out, _ = _cli(capsys, populated["store"], "runs", "params.depth = '2'")
    assert _names(out) == ["alpha"]
    code, out, _ = _cli(capsys, populated["store"], "runs", "metrics.acc > 5")
    assert code == 0 and _names(out) == [] and "(0 runs)" in out


def test_runs_by_experiment(populated, capsys) -> None:
    code, out, _ = _cli(capsys, populated["store"], "runs", "--experiment", "churn")
    assert code == 0 and _names(out) == ["gamma"]
    code, out, _ = _cli(capsys, populated["store"], "runs", "-e", "Default")
    assert sorted(_names(out)) == ["alpha", "beta"]


def test_runs_order_by(populated, capsys) -> None:
    code, out, _ = _cli(capsys, populated["store"], "runs", "--order-by", "metrics.acc ASC")
    assert code == 0 and _names(out) == ["alpha", "gamma", "beta"]
    code, out, _ = _cli(capsys, populated["store"], "runs", "--order-by", "metrics.acc DESC")
    assert _names(out) == ["beta", "gamma", "alpha"]
    _, out, _ = _cli(
        capsys, populated["store"], "runs", "--order-by", "params.depth DESC", "--max", "1"
    )
    assert _names(out) == ["beta"]


def test_runs_deleted(populated, capsys) -> None:
    code, out, _ = _cli(capsys, populated["store"], "runs", "--deleted")
    assert code == 0 and _names(out) == ["dropped"]


def test_invalid_filter_exits_2_with_a_caret(populated, capsys) -> None:
    code, out, err = _cli(capsys, populated["store"], "runs", "metrics.acc >> 0.5")
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith("nbtrack: error: Invalid filter at column 13:")
    assert lines[1] == "  metrics.acc >> 0.5"
    assert lines[2] == "  " + " " * 12 + "^"

    code, _, err = _cli(capsys, populated["store"], "runs", "--order-by", "metrics.acc SIDEWAYS")
    assert code == 2 and "nbtrack: error:" in err


@pytest.mark.parametrize("ref", ["beta", "prefix", "full", "last-of-churn"])
def test_show_by_name_prefix_id_and_last(populated, capsys, ref: str) -> None:
    ids = populated["ids"]
    arg, expected = {
        "beta": ("beta", ids["beta"]),
        "prefix": (ids["beta"][:6], ids["beta"]),
        "full": (ids["alpha"], ids["alpha"]),
        "last-of-churn": ("last", ids["gamma"]),
    }[ref]
    code, out, err = _cli(capsys, populated["store"], "show", arg)
    assert code == 0, err
    assert f"run_id = {expected}" in out
    assert "metrics (latest)" in out and "tags" in out


def test_show_lists_params_and_metrics(populated, capsys) -> None:
    _, out, _ = _cli(capsys, populated["store"], "show", "alpha")
    assert "depth = 2" in out
    assert "acc = 0.5" in out
    assert "status = FINISHED" in out


def test_show_unknown_run_exits_2(populated, capsys) -> None:
    code, out, err = _cli(capsys, populated["store"], "show", "no-such-run")
    assert code == 2
    assert out == ""
    assert err.startswith("nbtrack: error: No run 'no-such-run'")
    assert "run id, an id prefix" in err
    assert "Traceback" not in err


def test_experiments(populated, capsys) -> None:
    code, out, _ = _cli(capsys, populated["store"], "experiments")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "runs", "state"]
    assert lines[1].split() == ["0", "Default", "2", "active"]
    assert lines[2].split() == ["1", "churn", "1", "active"]  # the deleted run is not counted


def test_doctor_healthy_and_unhealthy_and_rebuild(populated, capsys) -> None:
    store, ids = populated["store"], populated["ids"]
    code, out, _ = _cli(capsys, store, "doctor")
    assert code == 0
    assert "checked 4 runs" in out and "store is healthy" in out

    code, out, _ = _cli(capsys, store, "doctor", "--rebuild")  # folds the log into the snapshot
    assert code == 0 and "catalog rebuilt from the journals" in out

    def tamper(data: dict) -> None:
        data["runs"][ids["beta"]]["status"] = "FAILED"

    edit_catalog(store, tamper)

    code, out, _ = _cli(capsys, store, "show", "beta")
    assert "status = FAILED" in out  # the tampered catalog is what readers see...
    code, out, _ = _cli(capsys, store, "doctor")
    assert code == 1  # ...and doctor notices it differs from the journal
    assert "catalog rows that differ from their journal: 1" in out
    assert ids["beta"] in out
    assert "nbtrack doctor --rebuild" in out

    code, out, _ = _cli(capsys, store, "doctor", "--rebuild")
    assert code == 0
    code, out, _ = _cli(capsys, store, "show", "beta")
    assert "status = FINISHED" in out
    code, out, _ = _cli(capsys, store, "doctor")
    assert code == 0 and "store is healthy" in out


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


def test_real_process(populated, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBTRACK_", "MLFLOW_"))}
    result = subprocess.run(
        [sys.executable, "-m", "nbtrack.cli", "--store", str(populated["store"]), "runs"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert _names(result.stdout) == ["gamma", "beta", "alpha"]

    result = subprocess.run(
        [sys.executable, "-m", "nbtrack.cli", "--store", str(populated["store"]), "show", "zzz"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("nbtrack: error: No run 'zzz'")


# -- nbtrack gc ----------------------------------------------------------------------------


def _process(store: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI as its own process (gc must not lean on the test's open store)."""
    command = [sys.executable, "-m", "nbtrack.cli", "--store", str(store), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _gc_rows(out: str) -> dict[str, str]:
    """run_id -> outcome, from gc's table."""
    lines = out.splitlines()
    rows = lines[2 : lines.index(next(x for x in lines if x.startswith(("removed", "would"))))]
    return {line.split()[0]: line.split("  ")[-1].strip() for line in rows}


def test_gc_dry_run_lists_the_deleted_runs_and_removes_nothing(populated) -> None:
    store, dropped = populated["store"], populated["ids"]["dropped"]
    result = _process(store, "gc", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert _gc_rows(result.stdout) == {dropped: "would remove"}
    assert result.stdout.splitlines()[0].split() == [
        "run_id", "name", "experiment", "deleted", "size", "outcome"
    ]  # fmt: skip
    assert "would remove 1 runs" in result.stdout
    assert (store / "runs" / dropped / "journal.jsonl").exists()
    assert dropped[:8] in _process(store, "runs", "--deleted").stdout


@pytest.mark.slow
def test_gc_removes_deleted_runs_for_good_and_a_rebuild_does_not_bring_them_back(
    populated, tracking
) -> None:
    store, ids = populated["store"], populated["ids"]
    tracking.log_text("notes", "notes.txt", run_id=ids["alpha"])
    watcher = Store(store)  # a process that had the store open before gc
    assert ids["dropped"] in {r["run_id"] for r in watcher.runs()}
    result = _process(store, "gc")
    assert result.returncode == 0, result.stderr
    assert _gc_rows(result.stdout) == {ids["dropped"]: "removed"}
    assert "removed 1 runs" in result.stdout
    assert not (store / "runs" / ids["dropped"]).exists()
    assert not any((store / "trash").iterdir())
    assert ids["dropped"][:8] not in _process(store, "runs", "--deleted").stdout
    assert ids["dropped"] not in {r["run_id"] for r in watcher.runs()}
    watcher.close()
    rebuilt = _process(store, "doctor", "--rebuild")
    assert rebuilt.returncode == 0 and "checked 3 runs" in rebuilt.stdout, rebuilt.stdout
    assert "(0 runs)" in _process(store, "runs", "--deleted").stdout
    assert _names(_process(store, "runs").stdout) == ["gamma", "beta", "alpha"]
    assert (store / "runs" / ids["alpha"] / "artifacts" / "notes.txt").read_text() == "notes"
    again = _process(store, "gc")
    assert again.returncode == 0 and again.stdout.strip() == "no deleted runs to remove"


def test_deleting_records_the_time_and_restoring_clears_it(tracking, tmp_path) -> None:
    with tracking.start_run() as run:
        pass
    before = int(time.time() * 1000)
    tracking.delete_run(run.info.run_id)
    with Store(tmp_path / "store") as store:
        deleted_time = store.get_run(run.info.run_id)["deleted_time"]
        assert before <= deleted_time <= int(time.time() * 1000)
        tracking.restore_run(run.info.run_id)
        assert store.get_run(run.info.run_id)["deleted_time"] is None


def _deleted_run(tracking, name: str, days_ago: float, recorded: bool = True) -> str:
    """A run deleted ``days_ago`` days ago: recorded in its journal, or (as by an nbtrack
    that did not record it) only in the journal's last change."""
    with tracking.start_run(run_name=name) as run:
        pass
    tracking.flush()  # its creation committed before another store changes it
    fields = {"lifecycle_stage": "deleted"}
    when = time.time() - days_ago * 86_400
    if recorded:
        fields["deleted_time"] = int(when * 1000)
    with Store(store_path(tracking)) as store:
        store.append(run.info.run_id, [{"op": "set", "fields": fields}])
        if not recorded:
            os.utime(store.journal_path(run.info.run_id), (when, when))
    return run.info.run_id


@pytest.mark.slow
def test_gc_older_than_removes_only_runs_deleted_that_long_ago(tracking, tmp_path) -> None:
    store = tmp_path / "store"
    old = _deleted_run(tracking, "old", 3)
    new = _deleted_run(tracking, "new", 0.5)
    old_unrecorded = _deleted_run(tracking, "old-unrecorded", 3, recorded=False)
    new_unrecorded = _deleted_run(tracking, "new-unrecorded", 0, recorded=False)
    tracking.flush()
    listed = _process(store, "gc", "--older-than", "2", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert _gc_rows(listed.stdout) == {old: "would remove", old_unrecorded: "would remove"}
    assert "by " in listed.stdout  # the unrecorded time is an upper bound
    removed = _process(store, "gc", "--older-than", "1d12h")  # MLflow's form: 1.5 days
    assert _gc_rows(removed.stdout) == {old: "removed", old_unrecorded: "removed"}
    left = {r["run_id"] for r in Store(store).runs()}
    assert {new, new_unrecorded} <= left and not {old, old_unrecorded} & left
    bad = _process(store, "gc", "--older-than", "soon")
    assert bad.returncode == 2 and "is not an age" in bad.stderr


def test_gc_run_ids_refuses_runs_that_are_not_deleted_and_removes_nothing(populated) -> None:
    store, ids = populated["store"], populated["ids"]
    refused = _process(store, "gc", "--run-ids", f"{ids['dropped']},{ids['alpha']},{'f' * 32}")
    assert refused.returncode == 2
    assert f"{ids['alpha']}: not deleted" in refused.stderr
    assert f"{'f' * 32}: no such run" in refused.stderr
    assert "nothing was removed" in refused.stderr and "Traceback" not in refused.stderr
    assert (store / "runs" / ids["dropped"]).exists()

    removed = _process(store, "gc", "--run-ids", ids["dropped"])
    assert removed.returncode == 0, removed.stderr
    assert _gc_rows(removed.stdout) == {ids["dropped"]: "removed"}


@pytest.mark.slow
def test_gc_keeps_a_run_behind_a_registered_model_version(tracking, tmp_path) -> None:
    from model_helpers import logged_run
    from nbtrack import registry

    store = tmp_path / "store"
    run_id = logged_run(tracking, 0.9)
    tracking.register_model(f"runs:/{run_id}/model", "churn")
    tracking.delete_run(run_id)
    tracking.flush()
    kept = _process(store, "gc")
    assert kept.returncode == 0, kept.stderr
    assert _gc_rows(kept.stdout)[run_id].startswith(
        "kept: source of registered model version churn v1"
    )
    assert "removed 0 runs" in kept.stdout and "kept 1" in kept.stdout
    assert tracking.load_model("models:/churn/1") is not None  # still loads
    refused = _process(store, "gc", "--run-ids", run_id)
    assert refused.returncode == 2 and "churn v1" in refused.stderr

    registry.delete_model_version("churn", 1)
    removed = _process(store, "gc")
    assert _gc_rows(removed.stdout) == {run_id: "removed"}
    assert not (store / "runs" / run_id).exists()


def test_purge_runs_refuses_a_run_still_logged_to_and_removes_nothing(tracking) -> None:
    dropped = _deleted_run(tracking, "dropped", 0)
    running = tracking.start_run().info.run_id
    tracking.delete_run(running)  # deleted while it runs
    with Store(store_path(tracking)) as store:
        with pytest.raises(InvalidParameterError) as refused:
            store.purge_runs([dropped, running])
        assert f"{running}: still RUNNING in process {os.getpid()}" in str(refused.value)
        assert store.journal_path(dropped).exists()
        planned = purge.gc(store, dry_run=True, progress=False)
        assert {(i.run_id, i.kept is None) for i in planned} == {
            (dropped, True),
            (running, False),
        }
        tracking.end_run()
        tracking.flush()  # the end reaches other stores at once
        purged = store.purge_runs([dropped, running])
        assert sorted(purged) == sorted([dropped, running])
        assert not store.run_dir(dropped).exists()
        assert not store.run_dir(running).exists()
