"""notebooks/quickstart.ipynb, executed headless by nbclient in a real kernel.

The notebook runs once per module (about 10 s) in a temporary copy; the tests then check
its outputs and the store it left in ``<workdir>/.nbtrack``, and that the ``nbtrack`` CLI
reads that store.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nbtrack.store import Store
from notebook_helpers import cell_starting, code_cells, execute_notebook, outputs, scratch_store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STATUSES = {
    "rf-small": "FINISHED",
    "rf-large": "FINISHED",
    "logreg": "FINISHED",
    "sgd-epochs": "FINISHED",
    "rf-broken": "FAILED",
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The notebook executed in a fresh folder (its kernel's cwd) and the store it made."""
    workdir = tmp_path_factory.mktemp("quickstart")
    nb = execute_notebook(NOTEBOOK, workdir)
    yield SimpleNamespace(nb=nb, workdir=workdir, store=scratch_store(nb))


def quickstart_runs(store_path: Path) -> dict[str, dict[str, Any]]:
    with Store(store_path) as store:
        experiment = store.get_experiment_by_name("quickstart")
        assert experiment is not None, [e["name"] for e in store.experiments()]
        rows = [r for r in store.runs() if r["experiment_id"] == experiment["experiment_id"]]
    return {r["run_name"]: r for r in rows}


def test_notebook_is_valid_and_only_the_tagged_cell_errors(executed):
    import nbformat  # here: importing it takes seconds, and collection needs no kernel

    nbformat.validate(executed.nb)
    cells = code_cells(executed.nb)
    assert all(c.execution_count is not None for c in cells)
    errored = [c for c in cells if outputs(c, "error")]
    assert [c.metadata.get("tags") for c in errored] == [["raises-exception"]]


def test_five_runs_with_their_statuses(executed):
    runs = quickstart_runs(executed.store)
    assert {name: r["status"] for name, r in runs.items()} == STATUSES
    with Store(executed.store) as store:
        assert len(store.runs()) == 5  # nothing landed in another experiment
    for row in runs.values():
        assert row["end_time"] is not None and row["end_time"] >= row["start_time"]
        assert row["tags"]["mlflow.source.type"] == "NOTEBOOK"


def test_every_track_cell_shows_a_run_card(executed):
    tracked = [c for c in code_cells(executed.nb) if c.source.startswith("%%track")]
    assert len(tracked) == 5
    for cell in tracked:
        name = re.search(r"--name (\S+)", cell.source).group(1)
        cards = [o["data"] for o in outputs(cell, "display_data")]
        assert len(cards) == 1, (name, cell.outputs)
        assert "nbtrack-run-card" in cards[0]["text/html"]
        assert f"<b>{name}</b>" in cards[0]["text/html"]
        assert cards[0]["text/plain"].startswith(f"[nbtrack] {name} | {STATUSES[name]} |")


def test_failing_cell_reraises_sklearns_error_and_keeps_its_run(executed):
    cell = cell_starting(executed.nb, "%%track --name rf-broken")
    assert cell.metadata.tags == ["raises-exception"]
    [error] = outputs(cell, "error")
    assert error["ename"] == "InvalidParameterError"
    assert "'max_depth' parameter of RandomForestClassifier" in error["evalue"]
    traceback = ANSI.sub("", "\n".join(error["traceback"]))
    assert "sklearn" in traceback and "max_depth=max_depth).fit(X_train, y_train)" in traceback

    row = quickstart_runs(executed.store)["rf-broken"]
    assert row["error"].startswith("InvalidParameterError: The 'max_depth' parameter")
    assert row["params"] == {"n_estimators": "100", "max_depth": "-1"}
    assert "accuracy" not in row.get("metrics", {})
    with Store(executed.store) as store:
        records = store.records(row["run_id"])
    [kept] = [r["text"] for r in records if r["op"] == "traceback"]
    assert "sklearn" in kept and kept.rstrip().splitlines()[-1].startswith(
        "sklearn.utils._param_validation.InvalidParameterError: The 'max_depth'"
    )


def test_params_tags_and_metrics_come_from_the_cells(executed):
    runs = quickstart_runs(executed.store)
    assert runs["rf-small"]["params"] == {"n_estimators": "20", "max_depth": "2"}
    assert runs["rf-large"]["params"] == {"n_estimators": "200", "max_depth": "8"}
    assert runs["logreg"]["params"] == {"C": "0.5"}
    assert runs["sgd-epochs"]["params"] == {"learning_rate": "0.01", "epochs": "30"}
    families = {name: r["tags"].get("family") for name, r in runs.items()}
    assert families == {
        "rf-small": "forest",
        "rf-large": "forest",
        "logreg": "linear",
        "sgd-epochs": "linear",
        "rf-broken": None,
    }
    for name in ("rf-small", "rf-large", "logreg"):
        metrics = runs[name]["metrics"]
        assert set(metrics) == {"accuracy", "f1"}
        assert 0.85 < metrics["accuracy"][0] <= 1 and 0.85 < metrics["f1"][0] <= 1


def test_sgd_run_has_thirty_epochs_of_history(executed):
    row = quickstart_runs(executed.store)["sgd-epochs"]
    assert set(row["metrics"]) == {"train_accuracy", "val_accuracy"}
    with Store(executed.store) as store:
        for key in ("val_accuracy", "train_accuracy"):
            steps, values, times = store.metric_history(row["run_id"], key)
            assert list(steps) == list(range(30)), key
            assert all(0 < v <= 1 for v in values) and len(times) == 30
            assert row["metrics"][key][:2] == [values[-1], 29]


def test_search_cell_shows_the_forest_runs_by_accuracy(executed):
    cell = cell_starting(executed.nb, "best = nbtrack.search_runs(")
    [result] = outputs(cell, "execute_result")
    assert "text/html" in result["data"]
    text = result["data"]["text/plain"]
    rows = [line.split() for line in text.split("\n\n")[0].splitlines()[1:]]
    shown = [(r[1], r[2], r[3], float(r[4])) for r in rows]
    runs = quickstart_runs(executed.store)
    forests = sorted(
        ("rf-small", "rf-large"), key=lambda n: runs[n]["metrics"]["accuracy"][0], reverse=True
    )
    expected = [
        (
            name,
            runs[name]["params"]["n_estimators"],
            runs[name]["params"]["max_depth"],
            runs[name]["metrics"]["accuracy"][0],
        )
        for name in forests
    ]
    assert [s[:3] for s in shown] == [e[:3] for e in expected]
    assert [s[3] for s in shown] == pytest.approx([e[3] for e in expected], abs=1e-6)
    assert shown[0][3] >= shown[1][3]


def test_runs_magic_lists_all_five(executed):
    [result] = outputs(cell_starting(executed.nb, "%track runs"), "execute_result")
    assert {"text/html", "text/plain"} <= set(result["data"])
    for name in STATUSES:
        assert f"<td>{name}</td>" in result["data"]["text/html"]
        assert re.search(rf"^\w+\s+{name}\s", result["data"]["text/plain"], re.M), name
    assert "(5 runs)" in result["data"]["text/plain"]


def test_plot_cell_shows_a_png(executed):
    cell = cell_starting(executed.nb, "import matplotlib.pyplot as plt")
    images = [
        o["data"]["image/png"] for o in outputs(cell, "display_data") if "image/png" in o["data"]
    ]
    assert len(images) == 1
    assert base64.b64decode(images[0]).startswith(b"\x89PNG\r\n\x1a\n")


def test_show_failed_run_includes_its_traceback(executed):
    [result] = outputs(cell_starting(executed.nb, "%track show rf-broken"), "execute_result")
    text, markup = result["data"]["text/plain"], result["data"]["text/html"]
    for rendering in (text, markup):
        assert "status = FAILED" in rendering
        assert "Traceback (most recent call last)" in rendering
        assert "InvalidParameterError" in rendering
    assert "max_depth = -1  # not a valid depth" in text  # the cell's source


def _cli(executed, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("NBTRACK_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "nbtrack.cli", "--store", str(executed.store), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=executed.workdir.parent,  # not the workdir: --store alone must find the runs
    )


def test_cli_lists_the_runs(executed):
    listed = _cli(executed, "runs")
    assert listed.returncode == 0, listed.stderr
    for name, status in STATUSES.items():
        assert re.search(rf"^\w+\s+{name}\s+{status}\s", listed.stdout, re.M), listed.stdout
    assert "(5 runs)" in listed.stdout

    good = _cli(executed, "runs", "metrics.accuracy > 0.9")
    assert good.returncode == 0, good.stderr
    names = {line.split()[1] for line in good.stdout.splitlines()[2:-1]}
    assert names == {"rf-small", "rf-large", "logreg"}
