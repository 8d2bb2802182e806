"""notebooks/autolog-and-reproduce.ipynb, executed headless in a real kernel: autolog on real
training, a stale result produced on purpose, and a reproduction whose metrics match."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from nbtrack.store import Store
from notebook_helpers import cell_starting, execute_notebook, scratch_store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "autolog-and-reproduce.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    workdir = tmp_path_factory.mktemp("autolog-notebook")
    session = str(workdir / NOTEBOOK.name)  # the notebook the runs name as their source
    nb = execute_notebook(NOTEBOOK, workdir, env={"JPY_SESSION_NAME": session})
    with Store(scratch_store(nb)) as store:
        experiment = store.get_experiment_by_name("autolog-demo")
        rows = [r for r in store.runs() if r["experiment_id"] == experiment["experiment_id"]]
        journals = {r["run_id"]: store.records(r["run_id"]) for r in rows}
    yield SimpleNamespace(nb=nb, workdir=workdir, rows=rows, journals=journals)


def _text(cell) -> str:
    return "".join(
        o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs
    )


def _artifacts(executed, run_id: str) -> set[str]:
    return {r["path"] for r in executed.journals[run_id] if r["op"] == "artifact"}


def _inputs(executed, run_id: str) -> list[dict]:
    return [r for r in executed.journals[run_id] if r["op"] == "input"]


def test_the_notebook_runs_clean(executed):
    import nbformat  # here: importing it takes seconds, and collection needs no kernel

    nbformat.validate(executed.nb)
    errors = [
        o for c in executed.nb.cells for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert errors == []
    names = sorted(r["run_name"] for r in executed.rows)
    assert names == ["load-data", "precision-at-threshold", "rf", "rf"]


def test_autolog_recorded_the_training_without_logging_code(executed):
    [rf] = [
        r for r in executed.rows if r["run_name"] == "rf" and "nbtrack.reproduces" not in r["tags"]
    ]
    assert rf["params"]["n_estimators"] == "100" and rf["params"]["criterion"] == "gini"
    assert {"training_accuracy_score", "training_roc_auc", "test_accuracy"} <= set(rf["metrics"])
    assert {"system/wall_time_seconds", "system/peak_memory_megabytes"} <= set(rf["metrics"])
    assert rf["tags"]["estimator_name"] == "RandomForestClassifier"
    artifacts = _artifacts(executed, rf["run_id"])
    assert {"estimator.html", "training_confusion_matrix.png", "model/MLmodel"} <= artifacts
    assert len([a for a in artifacts if a.startswith("figures/")]) == 1  # the importance plot
    inputs = {r["tags"]["mlflow.data.context"]: r for r in _inputs(executed, rf["run_id"])}
    # The data it trained on, and X_test: a later cell predicted from it with the model.
    assert sorted(inputs) == ["eval", "train"]
    train = inputs["train"]
    assert "mean radius" in train["dataset"]["schema"]
    assert "RandomForestClassifier_score_X_test" in rf["metrics"]  # model.score in the cell

    [load] = [r for r in executed.rows if r["run_name"] == "load-data"]
    [read] = _inputs(executed, load["run_id"])
    assert (
        read["dataset"]["name"] == "breast_cancer.csv" and read["dataset"]["source_type"] == "local"
    )
    assert str(executed.workdir / "breast_cancer.csv") in read["dataset"]["source"]


def test_the_stale_result_is_flagged_with_its_reason(executed):
    [row] = [r for r in executed.rows if r["run_name"] == "precision-at-threshold"]
    assert row["stale"].startswith("redefined outside the slice: `threshold` from In[")
    cell = cell_starting(executed.nb, "%%track --name precision-at-threshold")
    assert "STALE: redefined outside the slice" in _text(cell)
    others = [r for r in executed.rows if r["run_name"] != "precision-at-threshold"]
    assert not [r for r in others if r.get("stale")]


def test_the_reproduction_matches(executed):
    [original] = [
        r for r in executed.rows if r["run_name"] == "rf" and "nbtrack.reproduces" not in r["tags"]
    ]
    [copy] = [r for r in executed.rows if r["tags"].get("nbtrack.reproduces") == original["run_id"]]
    assert copy["tags"]["nbtrack.reproduction.matches"] == "true"
    for key in ("test_accuracy", "training_log_loss", "training_f1_score"):
        assert copy["metrics"][key][0] == pytest.approx(original["metrics"][key][0], rel=1e-9)
    shown = _text(cell_starting(executed.nb, "reproduction = nbtrack.reproduce"))
    assert "metrics match" in shown and "test_accuracy" in shown
    assert "reproduction.ipynb" in _artifacts(executed, copy["run_id"])
