"""The ``nbtrack`` command: runs, show, experiments and doctor, in-process and as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog_helpers import edit_catalog
from nbtrack.cli import main


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
    assert out.splitlines()[0].split()[:5] == ["run_id", "name", "status", "start", "duration"]
    assert "params.depth" in out and "metrics.acc" in out
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
