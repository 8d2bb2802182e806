"""sklearn autolog, differentially: the same script under real MLflow autolog and under
nbtrack (``import nbtrack as mlflow``), then what each logged is compared run for run.

Compared: every param (key and value), metric names and values (timings by name only),
tags (values, except those naming the machine, the user or a random run name), the
parent of each child run, artifact names, and dataset inputs (name, digest, context).
One known difference is left out: MLflow 3 logs the fitted model as a LoggedModel
outside the run's artifacts, while nbtrack puts the package in them (``model/``,
``best_estimator/``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,  # MLflow and nbtrack run the same scripts
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated"  # MLflow's SQLAlchemy usage
    ),
]

SCRIPT = """
import warnings
warnings.filterwarnings("ignore")
import {library} as mlflow

mlflow.set_tracking_uri({uri!r})
mlflow.sklearn.autolog()

from sklearn.cluster import DBSCAN, KMeans
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

X, y = load_breast_cancer(return_X_y=True)
X = StandardScaler().fit_transform(X)  # preprocessing is not autologged
LogisticRegression(max_iter=500).fit(X, y)

X, y = load_iris(return_X_y=True)
RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
GridSearchCV(
    DecisionTreeClassifier(random_state=0),
    {{"max_depth": [1, 2, 3], "min_samples_leaf": [1, 5]}},
    cv=3,
).fit(X, y)
cross_val_score(DecisionTreeClassifier(random_state=0), X, y, cv=3)  # no runs
DBSCAN(eps=0.5).fit_predict(X)

frame = load_iris(as_frame=True).frame
features, target = frame.drop(columns="target"), frame["target"]
Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))]).fit(
    features, target
)

Xd, yd = load_diabetes(return_X_y=True)
Ridge(alpha=0.5).fit(Xd, yd)

# Post-training metrics: evaluations of an autologged model join its run.
from sklearn import metrics
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X_train, y_train)
y_pred = forest.predict(X_test)
accuracy_score(y_test, y_pred)
accuracy_score(y_test, y_pred)
f1_score(y_test, y_pred, average="macro")
metrics.log_loss(y_test, forest.predict_proba(X_test))
forest.score(X_test, y_test)
X_test = X_test[:20]
forest.score(X_test, y_test[:20])

# A vectorizer's token_pattern and tokenizer are ordinary params, not secrets.
from sklearn.feature_extraction.text import CountVectorizer

texts = ["good movie", "bad movie", "great film", "awful film", "good plot", "bad plot"] * 5
Pipeline([("vect", CountVectorizer()), ("clf", LogisticRegression())]).fit(
    texts, [1, 0, 1, 0, 1, 0] * 5
)

with mlflow.start_run(run_name="mine"):
    KMeans(n_clusters=3, random_state=0, n_init=3).fit(X)
{finish}
"""
NBTRACK_FINISH = "import nbtrack.autologging; nbtrack.autologging.wait(); mlflow.flush()"

# Tags whose values name the machine, the user, the script or a random run name.
VARYING_TAGS = {"mlflow.runName", "mlflow.user", "mlflow.source.name", "mlflow.source.type"}
TIMINGS = {"mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"}
NBTRACK_ONLY_ARTIFACTS = {"model", "best_estimator"}


def _run_script(library: str, uri: str, folder: Path) -> None:
    finish = NBTRACK_FINISH if library == "nbtrack" else ""
    path = folder / f"{library}_script.py"
    path.write_text(textwrap.dedent(SCRIPT.format(library=library, uri=uri, finish=finish)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    for name in ("NBTRACK_DIR", "NBTRACK_TRACKING_URI", "NBTRACK_RUN_ID", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _mlflow_runs(uri: str) -> list[dict]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = []
    for run in client.search_runs(["0"], max_results=1000):
        runs.append(
            {
                "id": run.info.run_id,
                "status": run.info.status,
                "params": dict(run.data.params),
                "metrics": dict(run.data.metrics),
                "tags": dict(run.data.tags),
                "artifacts": {a.path for a in client.list_artifacts(run.info.run_id)},
                "inputs": sorted(
                    (d.dataset.name, d.dataset.digest, tuple((t.key, t.value) for t in d.tags))
                    for d in run.inputs.dataset_inputs
                ),
            }
        )
    return runs


def _nbtrack_runs(root: Path) -> list[dict]:
    from nbtrack.entities import inputs_from_records
    from nbtrack.store import Store

    runs = []
    with Store(root) as store:
        for row in store.runs():
            records = store.records(row["run_id"])
            inputs = inputs_from_records([r for r in records if r["op"] == "input"]).dataset_inputs
            runs.append(
                {
                    "id": row["run_id"],
                    "status": row["status"],
                    "params": dict(row.get("params", {})),
                    "metrics": {k: p[0] for k, p in row.get("metrics", {}).items()},
                    "tags": dict(row.get("tags", {})),
                    "artifacts": {
                        r["path"].split("/")[0] for r in records if r["op"] == "artifact"
                    },
                    "inputs": sorted(
                        (d.dataset.name, d.dataset.digest, tuple((t.key, t.value) for t in d.tags))
                        for d in inputs
                    ),
                }
            )
    return runs


def _key(run: dict, by_id: dict[str, dict]) -> tuple:
    """What identifies a run across the two tools: estimator, params, and its parent's."""
    parent = by_id.get(run["tags"].get("mlflow.parentRunId", ""))
    parent_key = _key(parent, by_id) if parent is not None else None
    return (run["tags"].get("estimator_name"), tuple(sorted(run["params"].items())), parent_key)


def _keyed(runs: list[dict]) -> dict[tuple, dict]:
    by_id = {r["id"]: r for r in runs}
    keyed = {_key(r, by_id): r for r in runs}
    assert len(keyed) == len(runs), "two runs with the same estimator and params"
    return keyed


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    folder = tmp_path_factory.mktemp("parity")
    mlflow_uri = f"sqlite:///{folder / 'mlflow.db'}"
    _run_script("mlflow", mlflow_uri, folder)
    _run_script("nbtrack", str(folder / "nbtrack-store"), folder)
    return _keyed(_mlflow_runs(mlflow_uri)), _keyed(_nbtrack_runs(folder / "nbtrack-store"))


def test_the_same_runs_with_the_same_params(logged) -> None:
    theirs, ours = logged
    assert len(theirs) == 14  # 9 fits (one in the user's run) and 5 search children
    assert set(ours) == set(theirs)
    assert {k: r["status"] for k, r in ours.items()} == {k: r["status"] for k, r in theirs.items()}


def test_the_same_metric_names_and_values(logged) -> None:
    theirs, ours = logged
    for key, mlflow_run in theirs.items():
        nbtrack_run = ours[key]
        assert set(nbtrack_run["metrics"]) == set(mlflow_run["metrics"]), key[0]
        for name, value in mlflow_run["metrics"].items():
            if name not in TIMINGS:
                assert nbtrack_run["metrics"][name] == pytest.approx(value, rel=1e-9), name


def test_the_same_tags(logged) -> None:
    theirs, ours = logged
    for key, mlflow_run in theirs.items():
        compared = {
            k: v
            for k, v in mlflow_run["tags"].items()
            if k not in VARYING_TAGS and k != "mlflow.parentRunId"
        }
        mine = {
            k: v
            for k, v in ours[key]["tags"].items()
            if k not in VARYING_TAGS
            and k != "mlflow.parentRunId"
            and not k.startswith("mlflow.source.git.")
        }
        assert mine == compared, key[0]
        assert set(ours[key]["tags"]) >= set(mlflow_run["tags"]) - {"mlflow.source.git.commit"}


def test_the_same_post_training_metrics(logged) -> None:
    theirs, ours = logged
    [key] = [k for k, r in theirs.items() if "metric_info.json" in r["artifacts"]]
    evaluated = {k for k in theirs[key]["metrics"] if not k.startswith("training_")}
    assert evaluated == {
        "accuracy_score_X_test",
        "accuracy_score-2_X_test",
        "f1_score_X_test",
        "log_loss_X_test",
        "RandomForestClassifier_score_X_test",
        "RandomForestClassifier_score-2_X_test-2",
    }  # what MLflow logged; test_the_same_metric_names_and_values holds nbtrack to it
    assert "metric_info.json" in ours[key]["artifacts"]


def test_the_same_artifacts_and_dataset_inputs(logged) -> None:
    theirs, ours = logged
    for key, mlflow_run in theirs.items():
        assert ours[key]["artifacts"] - NBTRACK_ONLY_ARTIFACTS == mlflow_run["artifacts"], key[0]
        assert ours[key]["inputs"] == mlflow_run["inputs"], key[0]
    models = {r["tags"]["estimator_name"] for r in ours.values() if "model" in r["artifacts"]}
    # Every fitted estimator's package, except DBSCAN's: it has no predict() to serve.
    assert models == {
        "LogisticRegression",
        "RandomForestClassifier",
        "GridSearchCV",
        "Pipeline",
        "Ridge",
        "KMeans",
    }
