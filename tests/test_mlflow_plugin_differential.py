"""Differential: MLflow example scripts run unchanged against MLflow's sqlite store and against
an nbtrack store (``MLFLOW_TRACKING_URI=nbtrack:...``), and both stores, read back through
MLflow's own client, hold the same runs: params, metric keys and every value, tags, dataset
inputs, logged models, registered versions and artifact paths.

The scripts (tests/mlflow_examples/): MLflow's sklearn ElasticNet wine example (the copy
there imports nbtrack in MLflow's place; here it runs with ``import mlflow`` restored),
sklearn autologging and a custom ``pyfunc.PythonModel``.

Runs are matched by position (experiment, then start time): both sides run the same
deterministic program. What is compared otherwise than by value, and why:

* ``mlflow.runName``: autologging's child runs get random names; top-level run names are
  compared as run names instead.
* ``mlflow.parentRunId``: run ids differ; compared as the parent's position.
* ``mlflow.log-model.history``: JSON naming run ids, model ids and times, when present.
* ``mean_fit_time`` and the like (a grid search's candidates' wall times): by key.
* ``registered_model_meta``: not logged by the script. Loading ``models:/NAME/VERSION``
  from MLflow's local artifact store writes it into the stored model's own folder (the
  loader is handed the stored folder itself); nbtrack hands out a verified copy, so the
  store is left as it was.
* artifact paths: MLflow 3's sqlite store keeps a logged model's files apart from its run;
  nbtrack keeps them in the run's folder under the model's name. The comparison is of the
  run's files together with each logged model's files under its name, and the nbtrack
  side must hold every one in the run's own folder.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from plugin_fixtures import CLEARED

pytestmark = [
    pytest.mark.slow,  # MLflow's examples, twice each, in fresh interpreters
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "tests" / "mlflow_examples"
RANDOM_TAGS = {"mlflow.runName", "mlflow.parentRunId", "mlflow.log-model.history"}
RANDOM_NAME = re.compile(r"[a-z]+-[a-z]+-\d+")
TIMED = re.compile(r"(mean|std)_(fit|score)_time")  # a search's candidates' wall times


def _script(name: str, folder: Path) -> Path:
    """The example as MLflow's users run it: ``import mlflow`` (restored in the ElasticNet
    copy, which imports nbtrack in its place for nbtrack's own API tests)."""
    source = (EXAMPLES / name).read_text()
    source = source.replace("import nbtrack as mlflow\n", "import mlflow\n")
    source = source.replace("import nbtrack.sklearn\n", "import mlflow.sklearn\n")
    assert "nbtrack" not in source.split('"""', 2)[-1]
    path = folder / name
    path.write_text(source)
    return path


def _run(script: Path, tracking_uri: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    result = subprocess.run(
        [sys.executable, script.name, *args],
        cwd=script.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _both(name: str, tmp_path: Path) -> tuple[tuple[str, str], tuple[Any, Any]]:
    """Run an example on each side; what it printed and what each store holds."""
    sides = {}
    for side, uri in (
        ("sqlite", f"sqlite:///{tmp_path}/sqlite/mlflow.db"),
        ("nbtrack", f"nbtrack://{tmp_path}/nbtrack/store"),
    ):
        folder = tmp_path / side
        folder.mkdir()
        printed = _run(_script(name, folder), uri)
        sides[side] = (printed, _contents(uri))
    return (sides["sqlite"][0], sides["nbtrack"][0]), (sides["sqlite"][1], sides["nbtrack"][1])


def _contents(uri: str) -> dict[str, Any]:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiments = client.search_experiments(order_by=["name ASC"])
    runs = [
        run
        for experiment in experiments
        for run in _in_order(client.search_runs([experiment.experiment_id]))
    ]
    position = {run.info.run_id: index for index, run in enumerate(runs)}
    models = {
        model.model_id: model
        for experiment in experiments
        for model in client.search_logged_models([experiment.experiment_id])
    }
    registered = {
        model.name: sorted(
            (v.version, v.current_stage)
            for v in client.search_model_versions(f"name = '{model.name}'")
        )
        for model in client.search_registered_models()
    }
    return {
        "runs": [_run_contents(client, run, position, models) for run in runs],
        "experiments": [e.name for e in experiments],
        "registered": registered,
    }


def _in_order(runs: list[Any]) -> list[Any]:
    """Top-level runs by start time, each followed by its children (autologging starts a
    search's child runs at one time) by start time and params."""
    children: dict[str, list[Any]] = {}
    for run in runs:
        children.setdefault(run.data.tags.get("mlflow.parentRunId", ""), []).append(run)

    def family(parent: str) -> list[Any]:
        ordered = sorted(
            children.get(parent, []),
            key=lambda r: (r.info.start_time, sorted(r.data.params.items())),
        )
        return [found for run in ordered for found in [run, *family(run.info.run_id)]]

    return family("")


def _run_contents(client: MlflowClient, run: Any, position: dict, models: dict) -> dict:
    run_id = run.info.run_id
    parent = run.data.tags.get("mlflow.parentRunId")
    own_models = sorted(
        (m for m in models.values() if m.source_run_id == run_id), key=lambda m: m.name
    )
    model_files = {
        f"{model.name}/{path}"
        for model in own_models
        for path in _tree(lambda p, m=model: client.list_logged_model_artifacts(m.model_id, p))
    }
    run_files = _tree(lambda p: client.list_artifacts(run_id, p))
    model_files = {p for p in model_files if not p.endswith("/registered_model_meta")}
    return {
        "name": None if parent else run.info.run_name,
        "parent": position.get(parent),
        "status": run.info.status,
        "params": run.data.params,
        "metrics": {
            key: sorted(
                (m.step, _value(key, m.value)) for m in client.get_metric_history(run_id, key)
            )
            for key in run.data.metrics
        },
        "latest": {k: _value(k, v) for k, v in run.data.metrics.items()},
        "tags": {k: v for k, v in run.data.tags.items() if k not in RANDOM_TAGS},
        "inputs": sorted(
            (
                i.dataset.name,
                i.dataset.digest,
                i.dataset.source_type,
                tuple(sorted((t.key, t.value) for t in i.tags)),
            )
            for i in run.inputs.dataset_inputs
        ),
        "models": [m.name for m in own_models],
        "files": sorted(run_files | model_files),
        "run_files": run_files,
        "model_files": model_files,
    }


def _tree(list_folder) -> set[str]:
    found, folders = set(), [None]
    while folders:
        for info in list_folder(folders.pop()):
            (folders.append if info.is_dir else found.add)(info.path)
    return found


def _value(key: str, value: float) -> Any:
    """A metric value to compare: NaN equal to NaN; a timing only by its presence."""
    if TIMED.fullmatch(key):
        return "timing"
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def _compare(sqlite: dict[str, Any], nbtrack: dict[str, Any]) -> None:
    assert nbtrack["experiments"] == sqlite["experiments"]
    assert nbtrack["registered"] == sqlite["registered"]
    assert len(nbtrack["runs"]) == len(sqlite["runs"])
    for ours, theirs in zip(nbtrack["runs"], sqlite["runs"], strict=True):
        # Logged models' files are in the run's own folder on nbtrack's side.
        assert ours["model_files"] <= ours["run_files"]
        for field in ("run_files", "model_files"):
            ours.pop(field), theirs.pop(field)
        unnamed = [RANDOM_NAME.fullmatch(r["name"] or "") for r in (ours, theirs)]
        if all(unnamed):  # neither side was given a name
            ours.pop("name"), theirs.pop("name")
        assert ours == theirs


def test_sklearn_elasticnet_wine_example(tmp_path: Path) -> None:
    (printed_sqlite, printed_nbtrack), (sqlite, nbtrack) = _both(
        "sklearn_elasticnet_wine.py", tmp_path
    )
    assert printed_nbtrack == printed_sqlite
    [run] = nbtrack["runs"]
    assert set(run["params"]) == {"alpha", "l1_ratio"}
    assert set(run["metrics"]) == {"rmse", "r2", "mae"}
    assert run["models"] == ["model"] and "model/MLmodel" in run["files"]
    assert nbtrack["registered"] == {"ElasticnetWineModel": [(1, "None")]}
    _compare(sqlite, nbtrack)


def test_sklearn_autolog_example(tmp_path: Path) -> None:
    (printed_sqlite, printed_nbtrack), (sqlite, nbtrack) = _both("sklearn_autolog.py", tmp_path)
    assert printed_nbtrack == printed_sqlite
    names = [r["name"] for r in nbtrack["runs"]]
    assert names[:3] == ["linear", "pipeline", "search"]
    assert len(names) == 6  # the grid search's three candidates are child runs
    linear = nbtrack["runs"][0]
    assert "training_score" in linear["metrics"] and linear["params"]["fit_intercept"] == "True"
    assert linear["inputs"] and linear["models"] == ["model"]
    _compare(sqlite, nbtrack)


def test_pyfunc_python_model_example(tmp_path: Path) -> None:
    (printed_sqlite, printed_nbtrack), (sqlite, nbtrack) = _both("pyfunc_python_model.py", tmp_path)
    assert printed_nbtrack == printed_sqlite
    assert printed_nbtrack.count("[4.5, 6.75, 9.0]") == 3
    [run] = nbtrack["runs"]
    assert "scaled_sum/artifacts/config.json" in run["files"]
    _compare(sqlite, nbtrack)


@pytest.mark.parametrize(
    ("script", "library", "metric"),
    [("xgboost_native.py", "xgboost", "train-mlogloss"),
     ("lightgbm_native.py", "lightgbm", "train-multi_logloss")],
)  # fmt: skip
def test_boosting_autolog_examples(tmp_path: Path, script: str, library: str, metric: str) -> None:
    """MLflow's XGBoost and LightGBM autologging examples: the library's params, its
    per-iteration metric (one point per boosting round), feature importances and the model
    reach the nbtrack store as they reach MLflow's."""
    pytest.importorskip(library)
    (printed_sqlite, printed_nbtrack), (sqlite, nbtrack) = _both(script, tmp_path)
    # LightGBM's [Info] lines say how long it took and which threading its timing chose
    # (with a hint to force one of them on the lines after).
    timing = re.compile(r"^(\[LightGBM\] \[Info\] |.*force_(row|col)_wise).*\n", re.MULTILINE)
    assert timing.sub("", printed_nbtrack) == timing.sub("", printed_sqlite)
    [run] = nbtrack["runs"]
    assert {"log_loss", "accuracy", metric} <= set(run["metrics"])
    assert len(run["metrics"][metric]) == 10  # both examples boost for 10 rounds
    assert run["params"]["learning_rate"] in {"0.3", "0.1"}
    assert run["models"] == ["model"] and "model/MLmodel" in run["files"]
    assert any(path.startswith("feature_importance_") for path in run["files"])
    _compare(sqlite, nbtrack)
    # A second run, as a sweep would make one (the example's own --learning-rate option).
    _run(tmp_path / "nbtrack" / script, f"nbtrack://{tmp_path}/nbtrack/store", *SECOND)
    _shown_in_panels(tmp_path / "nbtrack" / "store", metric, run["params"])


SECOND = ("--learning-rate", "0.2")


def _shown_in_panels(store_dir: Path, metric: str, params: dict[str, str]) -> None:
    """The two runs as nbtrack's panels show them: rows of the run table, the per-round
    metric as a curve of 10 points each, params and metrics side by side in CompareRuns
    (the learning rate differing)."""
    from nbtrack.tracking.session import close_stores, open_store
    from nbtrack.widgets.compare import CompareRuns
    from nbtrack.widgets.curves import MetricCurves
    from nbtrack.widgets.table import RunTable

    try:
        store = open_store(store_dir.resolve())
        run_ids = [row["run_id"] for row in store.runs()]
        table = RunTable(search_all_experiments=True, store=store)
        assert sorted(r["id"] for r in table.rows) == sorted(run_ids) and len(run_ids) == 2
        curves = MetricCurves(run_ids, [metric], store=store)
        assert [(s["metric"], s["n"]) for s in curves.series] == [(metric, 10)] * 2
        compared = CompareRuns(run_ids, store=store)
        assert {p["key"] for p in compared.params} == set(params)
        assert {"log_loss", "accuracy", metric} <= {m["key"] for m in compared.metrics}
        [rate] = [p for p in compared.params if p["key"] == "learning_rate"]
        assert rate["differs"] and SECOND[1] in str(rate) and params["learning_rate"] in str(rate)
    finally:
        close_stores()
