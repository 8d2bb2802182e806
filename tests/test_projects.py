"""``nbtrack run``: a notebook swept over a parameter grid (real kernels, two at a time), and
an MLproject entry point whose own ``import nbtrack as mlflow`` logging joins its run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nbtrack.errors import InvalidParameterError
from nbtrack.projects import parameter_sets
from nbtrack.store import Store


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbtrack.cli", "--store", str(cwd / "store"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ.copy(),
    )


def _notebook(path: Path) -> Path:
    import nbformat  # here: importing it takes seconds, and collection needs no kernel

    parameters = nbformat.v4.new_code_cell("lr = 0.1\ndepth = 1")
    parameters.metadata["tags"] = ["parameters"]
    cells = [
        parameters,
        nbformat.v4.new_code_cell("%load_ext nbtrack\nimport nbtrack"),
        nbformat.v4.new_code_cell(
            "if (lr, depth) == (0.2, 3):\n    raise ValueError('this combination diverges')"
        ),
        nbformat.v4.new_code_cell("%%track --metrics score\nscore = lr * depth"),
        nbformat.v4.new_code_cell("nbtrack.log_metric('after', depth, step=1)"),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)
    return path


def test_parameter_sets_multiply_grids_and_read_literals() -> None:
    sets = parameter_sets(["seed=7", "name=base"], ["lr=0.1,0.2", "deep=True,False"])
    assert sets == [
        {"seed": 7, "name": "base", "lr": 0.1, "deep": True},
        {"seed": 7, "name": "base", "lr": 0.1, "deep": False},
        {"seed": 7, "name": "base", "lr": 0.2, "deep": True},
        {"seed": 7, "name": "base", "lr": 0.2, "deep": False},
    ]
    with pytest.raises(InvalidParameterError, match="NAME=VALUE"):
        parameter_sets(["no-equals"], [])
    with pytest.raises(InvalidParameterError, match="Python name"):
        parameter_sets(["1x=2"], [])


def test_a_grid_of_four_with_one_failure_gives_three_finished_and_one_failed(kernel_env: Path):
    import nbformat

    notebook = _notebook(kernel_env / "train.ipynb")
    result = _cli(
        "run",
        str(notebook),
        "--grid",
        "lr=0.1,0.2",
        "--grid",
        "depth=2,3",
        "--jobs",
        "2",
        cwd=kernel_env,
    )
    assert result.returncode == 1, result.stderr  # not every run finished
    assert "nbtrack run train.ipynb" in result.stderr  # the progress bar
    assert "this combination diverges" in result.stdout

    with Store(kernel_env / "store") as store:
        rows = store.runs()
        journals = {r["run_id"]: store.records(r["run_id"]) for r in rows}
        artifact_dirs = {r["run_id"]: store.artifact_dir(r["run_id"]) for r in rows}
    assert len(rows) == 4
    by_params = {(r["params"]["lr"], r["params"]["depth"]): r for r in rows}
    assert set(by_params) == {("0.1", "2"), ("0.1", "3"), ("0.2", "2"), ("0.2", "3")}
    failed = by_params.pop(("0.2", "3"))
    assert failed["status"] == "FAILED"
    assert failed["error"] == "ValueError: this combination diverges"
    assert "score" not in failed.get("metrics", {})
    for (lr, depth), row in by_params.items():
        assert row["status"] == "FINISHED"
        # The notebook's own %%track cell and log_metric joined the run the CLI made.
        assert row["metrics"]["score"][0] == pytest.approx(float(lr) * int(depth))
        assert row["metrics"]["after"][:2] == [int(depth), 1]
        assert [r["op"] for r in journals[row["run_id"]]].count("cell") == 1
    for row in rows:
        executed = nbformat.read(artifact_dirs[row["run_id"]] / "train.ipynb", 4)
        injected = [
            c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])
        ]
        assert len(injected) == 1 and f"lr = {row['params']['lr']}" in injected[0].source
        assert row["tags"]["mlflow.source.name"] == str(notebook)


MLPROJECT = """
name: demo
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      epochs: {type: int, default: 3}
      data: path
      label: {type: string, default: plain}
    command: "python train.py --alpha {alpha} --epochs {epochs} --data {data} --label {label}"
  broken:
    command: "python -c 'import sys; sys.exit(3)'"
"""
TRAIN = """
import argparse, os
import nbtrack as mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float)
parser.add_argument("--epochs", type=int)
parser.add_argument("--data")
parser.add_argument("--label")
args = parser.parse_args()
with mlflow.start_run() as run:
    assert run.info.run_id == os.environ["NBTRACK_RUN_ID"]
    mlflow.log_param("rows", sum(1 for _ in open(args.data)))
    mlflow.set_tag("label_seen", args.label)
    for epoch in range(args.epochs):
        mlflow.log_metric("loss", args.alpha / (epoch + 1), step=epoch)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "MLproject").write_text(MLPROJECT)
    (folder / "train.py").write_text(textwrap.dedent(TRAIN))
    (folder / "data.csv").write_text("a\n1\n2\n")
    return folder


def test_an_mlproject_entry_point_runs_as_one_tracked_run(project: Path, kernel_env: Path):
    result = _cli(
        "run",
        str(project),
        "-P",
        "alpha=0.25",
        "-P",
        "data=data.csv",
        "-P",
        "label=two words",
        "--experiment",
        "projects",
        cwd=kernel_env,
    )
    assert result.returncode == 0, result.stderr
    with Store(kernel_env / "store") as store:
        [row] = store.runs()
        steps, losses, _ = store.metric_history(row["run_id"], "loss")
        experiment = store.get_experiment(row["experiment_id"])["name"]
    assert row["status"] == "FINISHED" and experiment == "projects"
    assert row["params"] == {
        "alpha": "0.25",
        "epochs": "3",  # the default
        "data": str((project / "data.csv").resolve()),
        "label": "two words",  # quoted in the command, whole in the script
        "rows": "3",  # logged by the script itself, into the same run
    }
    assert row["tags"]["label_seen"] == "two words"
    assert row["tags"]["mlflow.project.entryPoint"] == "main"
    assert row["tags"]["mlflow.source.type"] == "PROJECT"
    assert list(steps) == [0, 1, 2]
    assert list(losses) == pytest.approx([0.25, 0.125, 0.25 / 3])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-P", "data=data.csv", "-P", "beta=1"], "has no parameter 'beta'"),
        (["-P", "data=data.csv", "-P", "alpha=fast"], "expected a float, got 'fast'"),
        (["-P", "data=data.csv", "-P", "epochs=2.5"], "expected an integer, got '2.5'"),
        (["-P", "alpha=1"], "needs a value for 'data'"),
        (["-P", "data=missing.csv"], "expected an existing path"),
        (["-e", "nope"], "no entry point 'nope'"),
    ],
)
def test_bad_mlproject_parameters_are_clear_errors_and_run_nothing(
    project: Path, kernel_env: Path, arguments: list[str], message: str
):
    result = _cli("run", str(project), *arguments, cwd=kernel_env)
    assert result.returncode == 2
    assert message in result.stderr
    with Store(kernel_env / "store") as store:
        assert store.runs() == []


def test_a_failing_command_makes_a_failed_run(project: Path, kernel_env: Path):
    result = _cli("run", str(project), "-e", "broken", cwd=kernel_env)
    assert result.returncode == 1
    with Store(kernel_env / "store") as store:
        [row] = store.runs()
    assert row["status"] == "FAILED" and row["error"] == "the command exited with status 3"


def test_a_scheduled_run_is_left_for_its_child_and_not_measured_here(tracking) -> None:
    import nbtrack
    from nbtrack.autologging import system
    from nbtrack.projects import runs

    nbtrack.autolog(integrations="system")
    try:
        run_id = runs.schedule("later", {"lr": 0.1}, {"team": "a"})
        assert run_id not in system._runs  # no sampler writes system/* into it from here
    finally:
        nbtrack.autolog(disable=True)
    run = tracking.get_run(run_id)
    assert run.info.status == "SCHEDULED" and tracking.active_run() is None
    assert run.data.params == {"lr": "0.1"} and run.data.metrics == {}
    assert run.data.tags["team"] == "a" and run.data.tags["mlflow.runName"] == "later"
    assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.name"]
    with pytest.raises(InvalidParameterError, match="tag"):
        runs.schedule("bad", {}, {"team!": "x"})
