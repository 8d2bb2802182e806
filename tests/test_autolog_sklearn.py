"""scikit-learn autolog with real estimators: what lands in the store, and that the user's
fit is never changed by it (exceptions, faults in the hook, turning it off)."""

from __future__ import annotations

import math
import pickle
import threading
import warnings

import numpy as np
import pytest
from sklearn import metrics
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

import nbtrack
from nbtrack.autologging import sklearn as hooks
from nbtrack.autologging import sklearn_logging
from nbtrack.autologging.patches import AutologWarning, raw_attribute

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CLASSIFIER_METRICS = {
    "training_accuracy_score",
    "training_precision_score",
    "training_recall_score",
    "training_f1_score",
    "training_log_loss",
    "training_roc_auc",
    "training_score",
}
REGRESSOR_METRICS = {
    "training_mean_squared_error",
    "training_root_mean_squared_error",
    "training_mean_absolute_error",
    "training_r2_score",
    "training_score",
}


@pytest.fixture
def autologged(tracking):
    """The fluent API on a fresh store with sklearn autolog on; off again afterwards."""
    nbtrack.autolog(integrations="sklearn")
    yield tracking
    nbtrack.autolog(disable=True)


def _runs(api) -> list:
    nbtrack.autologging.wait()
    return api.search_runs(output_format="list")


def _artifacts(api, run_id: str) -> set[str]:
    store = api.tracking.fluent.current_store()
    return {r["path"] for r in store.records(run_id) if r["op"] == "artifact"}


@pytest.mark.slow
def test_a_classifier_fit_outside_a_run_gets_a_run_of_its_own(autologged) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=50)
    assert model.fit(X, y) is model
    assert nbtrack.active_run() is None  # the run autolog started is over
    [run] = _runs(autologged)
    assert run.info.status == "FINISHED"
    assert run.data.params == {k: str(v) for k, v in model.get_params(deep=True).items()}
    assert set(run.data.metrics) == CLASSIFIER_METRICS
    predicted = model.predict(X)
    expected = metrics.f1_score(y, predicted, average="weighted")
    assert run.data.metrics["training_f1_score"] == pytest.approx(expected)
    assert run.data.metrics["training_roc_auc"] == pytest.approx(
        metrics.roc_auc_score(y, model.predict_proba(X)[:, 1])
    )
    tags = run.data.tags
    assert tags["mlflow.autologging"] == "sklearn"
    assert tags["estimator_name"] == "LogisticRegression"
    assert tags["estimator_class"] == "sklearn.linear_model._logistic.LogisticRegression"
    artifacts = _artifacts(autologged, run.info.run_id)
    assert {
        "estimator.html",
        "training_confusion_matrix.png",
        "training_roc_curve.png",  # two classes: the ROC and precision-recall curves too
        "training_precision_recall_curve.png",
        "model/MLmodel",
    } <= artifacts
    folder = autologged.tracking.fluent.current_store().artifact_dir(run.info.run_id)
    assert (folder / "training_confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    loaded = nbtrack.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    assert (loaded.predict(X) == predicted).all()
    inputs = autologged.get_run(run.info.run_id).inputs.dataset_inputs
    # What it trained on; predicting from X above made X an evaluation input too.
    by_context = {d.tags[0].value: d.dataset.digest for d in inputs}
    assert by_context == {
        "train": nbtrack.data.from_numpy(X, targets=y).digest,
        "eval": nbtrack.data.from_numpy(X).digest,
    }


def test_a_regressor_fit_inside_a_run_logs_into_it(autologged) -> None:
    X, y = load_diabetes(return_X_y=True)
    with autologged.start_run(run_name="mine") as run:
        model = LinearRegression().fit(X, y)
        assert autologged.active_run() is run  # the user's run stays active
        autologged.log_metric("own", 1.0)
    [logged] = _runs(autologged)
    assert logged.info.run_id == run.info.run_id and logged.info.run_name == "mine"
    assert set(logged.data.metrics) == REGRESSOR_METRICS | {"own"}
    mse = metrics.mean_squared_error(y, model.predict(X))
    assert logged.data.metrics["training_mean_squared_error"] == pytest.approx(mse)
    assert logged.data.metrics["training_root_mean_squared_error"] == pytest.approx(math.sqrt(mse))
    assert "mlflow.autologging" not in logged.data.tags  # a run the user started
    assert "training_confusion_matrix.png" not in _artifacts(autologged, run.info.run_id)


def test_a_pipeline_logs_once_with_deep_params(autologged) -> None:
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=200))])
    pipe.fit(X, y)
    [run] = _runs(autologged)  # the steps' own fits made no runs
    assert run.data.tags["estimator_name"] == "Pipeline"
    assert run.data.params["clf__max_iter"] == "200"
    assert run.data.params["scale__with_mean"] == "True"
    assert "training_roc_curve.png" not in _artifacts(autologged, run.info.run_id)  # 3 classes


def test_a_search_logs_best_params_cv_results_and_child_runs(autologged) -> None:
    X, y = load_iris(return_X_y=True)
    grid = {"max_depth": [1, 2, 3], "min_samples_leaf": [1, 5]}
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=3).fit(X, y)
    runs = _runs(autologged)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 6 and len(children) == 5  # the best 5 of 6 candidates
    assert parent.data.params["best_max_depth"] == str(search.best_params_["max_depth"])
    assert "estimator" in parent.data.params and "max_depth" not in parent.data.params
    assert parent.data.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert {"cv_results.csv", "estimator.html"} <= _artifacts(autologged, parent.info.run_id)
    ranks = sorted(child.data.metrics["rank_test_score"] for child in children)
    assert ranks == sorted(search.cv_results_["rank_test_score"])[:5]
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["estimator_name"] == "DecisionTreeClassifier"
        assert child.data.tags["mlflow.autologging"] == "sklearn"
        assert {"mean_test_score", "std_test_score", "mean_fit_time"} <= set(child.data.metrics)
        assert child.data.params["random_state"] == "0"


def test_max_tuning_runs_bounds_the_children(tracking) -> None:
    nbtrack.sklearn.autolog(max_tuning_runs=2)
    try:
        X, y = load_iris(return_X_y=True)
        GridSearchCV(DecisionTreeClassifier(), {"max_depth": [1, 2, 3]}, cv=3).fit(X, y)
        runs = _runs(tracking)
    finally:
        nbtrack.sklearn.autolog(disable=True)
    assert len([r for r in runs if "mlflow.parentRunId" in r.data.tags]) == 2


def test_cross_validation_helpers_make_no_runs(autologged) -> None:
    X, y = load_iris(return_X_y=True)
    scores = cross_val_score(DecisionTreeClassifier(random_state=0), X, y, cv=3)
    assert len(scores) == 3
    assert _runs(autologged) == []


def test_the_fits_own_exception_passes_through_and_fails_the_run(autologged) -> None:
    X, y = load_iris(return_X_y=True)
    X = X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError) as plain:
        nbtrack.autolog(disable=True)
        LogisticRegression().fit(X, y)
    nbtrack.autolog(integrations="sklearn")
    with pytest.raises(ValueError) as logged:
        LogisticRegression().fit(X, y)
    assert str(logged.value) == str(plain.value)
    [run] = _runs(autologged)
    assert run.info.status == "FAILED"
    assert nbtrack.active_run() is None


class CountingTree(DecisionTreeClassifier):
    """Counts how often the real fit runs."""

    calls = 0

    def fit(self, X, y, sample_weight=None, check_input=True):
        CountingTree.calls += 1
        return super().fit(X, y, sample_weight, check_input)


@pytest.mark.parametrize(
    ("owner", "name"),
    [(hooks._Fit, "log_params"), (sklearn_logging, "training_metrics"), (hooks, "log_model")],
)
def test_a_fault_in_the_hook_warns_and_never_breaks_the_fit(autologged, monkeypatch, owner, name):
    def broken(*args, **kwargs):
        raise RuntimeError("bug in the hook")

    monkeypatch.setattr(owner, name, broken)
    X, y = load_iris(return_X_y=True)
    CountingTree.calls = 0
    model = CountingTree(random_state=0)
    with pytest.warns(AutologWarning, match="bug in the hook"):
        assert model.fit(X, y) is model
        nbtrack.autologging.wait()
    assert CountingTree.calls == 1  # the original ran exactly once
    assert model.predict(X[:3]).shape == (3,)
    [run] = _runs(autologged)
    assert run.info.status == "FINISHED"
    assert run.data.tags["estimator_name"] == "CountingTree"


def test_a_fault_before_the_fit_still_runs_the_original_once(autologged, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("cannot choose a run")

    monkeypatch.setattr(hooks, "_target_run", broken)
    X, y = load_iris(return_X_y=True)
    CountingTree.calls = 0
    with pytest.warns(AutologWarning, match="cannot choose a run"):
        CountingTree().fit(X, y)
    assert CountingTree.calls == 1
    assert _runs(autologged) == []


def test_warnings_as_errors_do_not_break_the_fit(autologged, monkeypatch, capsys) -> None:
    monkeypatch.setattr(hooks._Fit, "log_params", lambda self: 1 / 0)
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = DecisionTreeClassifier().fit(X, y)
    assert model.predict(X[:1]).shape == (1,)
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_exclusive_leaves_the_users_runs_alone(tracking) -> None:
    nbtrack.autolog(integrations="sklearn", exclusive=True)
    try:
        X, y = load_iris(return_X_y=True)
        with tracking.start_run() as run:
            DecisionTreeClassifier().fit(X, y)
        DecisionTreeClassifier().fit(X, y)  # no run active: autolog's own run
        runs = _runs(tracking)
    finally:
        nbtrack.autolog(disable=True)
    mine = [r for r in runs if r.info.run_id == run.info.run_id]
    assert mine[0].data.params == {} and len(runs) == 2


def test_models_over_the_size_cap_are_not_logged(autologged, monkeypatch) -> None:
    monkeypatch.setenv("NBTRACK_AUTOLOG_MAX_MODEL_MB", "0.0001")
    X, y = load_iris(return_X_y=True)
    with pytest.warns(AutologWarning, match="cap"):
        LogisticRegression(max_iter=200).fit(X, y)
    [run] = _runs(autologged)
    artifacts = _artifacts(autologged, run.info.run_id)
    assert "estimator.html" in artifacts and not [a for a in artifacts if a.startswith("model/")]


def _own_methods(names: tuple[str, ...] = hooks.FIT_METHODS) -> dict:
    from sklearn import model_selection
    from sklearn.model_selection import _validation

    found = {}
    for cls in hooks.estimator_classes():
        for name in names:
            found[(cls, name)] = vars(cls).get(name)
            raw = raw_attribute(cls, name)
            if hasattr(raw, "fn"):
                found[(id(raw), "fn")] = raw.fn
    for module in (model_selection, _validation):
        for name in hooks.CV_HELPERS:
            found[(module.__name__, name)] = getattr(module, name, None)
    return found


def test_turning_autolog_off_restores_every_original_method(tracking) -> None:
    before = _own_methods()
    nbtrack.autolog(integrations="sklearn")
    patched = _own_methods()
    changed = [key for key in before if before[key] is not patched[key]]
    assert len(changed) > 100  # every estimator's fit methods and the CV helpers
    assert hasattr(Pipeline(steps=[("s", StandardScaler())]), "fit_predict") is False
    nbtrack.autolog(disable=True)
    after = _own_methods()
    assert [key for key in before if before[key] is not after[key]] == []
    X, y = load_iris(return_X_y=True)
    DecisionTreeClassifier().fit(X, y)
    assert tracking.search_runs(output_format="list") == []


class TokenTree(DecisionTreeClassifier):
    """An estimator with a credential among its params."""

    def __init__(self, api_token: str = "", max_depth=None):
        super().__init__(max_depth=max_depth)
        self.api_token = api_token


TEXTS = ["good movie", "bad movie", "great film", "awful film", "good plot", "bad plot"] * 5
LABELS = [1, 0, 1, 0, 1, 0] * 5


@pytest.mark.slow
def test_a_vectorizers_token_params_are_ordinary_params(autologged) -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    pipeline = Pipeline([("vect", CountVectorizer()), ("clf", LogisticRegression())])
    pipeline.fit(TEXTS, LABELS)
    [run] = _runs(autologged)
    assert run.data.params["vect__token_pattern"] == r"(?u)\b\w\w+\b"
    assert run.data.params["vect__tokenizer"] == "None"
    assert run.data.params == {k: str(v) for k, v in pipeline.get_params(deep=True).items()}


def test_secret_looking_params_are_redacted(autologged) -> None:
    X, y = load_iris(return_X_y=True)
    TokenTree(api_token="tok-5up3r-s3cr3t", max_depth=2).fit(X, y)
    [run] = _runs(autologged)
    assert run.data.params["api_token"] == "<redacted>"
    assert run.data.params["max_depth"] == "2"
    root = autologged.tracking.fluent.current_store().root
    leaks = [
        p.name for p in root.rglob("*") if p.is_file() and b"tok-5up3r-s3cr3t" in p.read_bytes()
    ]
    # Only the model itself holds it: the pickle is the estimator object, as the user made it.
    assert leaks == ["model.pkl"]
    html = (root / "runs" / run.info.run_id / "artifacts" / "estimator.html").read_text()
    assert "TokenTree" in html and "&lt;redacted&gt;" in html


def test_the_copy_for_the_background_is_the_users_estimator_detached() -> None:
    """One pickling gives the background its copy and the size cap its size: the copy
    predicts alike, owns writable arrays, and a change to it does not reach the user's."""
    X, y = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(random_state=0).fit(X, y)
    copied, size = hooks.snapshot(model)
    assert copied is not model
    assert np.array_equal(copied.predict(X), model.predict(X))
    assert 0.95 < size / len(pickle.dumps(model, protocol=5)) <= 1
    copied.tree_.value[:] = 0  # the tree's arrays travelled out of band and were copied
    assert model.tree_.value.any()


def test_a_pipeline_with_a_lambda_is_copied_and_its_model_logged(autologged) -> None:
    X, y = load_iris(return_X_y=True)
    pipeline = Pipeline(
        [("double", FunctionTransformer(lambda rows: rows * 2)), ("lr", LogisticRegression())]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", AutologWarning)
        pipeline.fit(X, y)
    [run] = _runs(autologged)
    assert set(run.data.metrics) == CLASSIFIER_METRICS
    assert "model/MLmodel" in _artifacts(autologged, run.info.run_id)
    loaded = nbtrack.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    assert np.array_equal(loaded.predict(X), pipeline.predict(X))


def test_an_estimator_no_pickle_carries_is_deep_copied_for_the_background(autologged) -> None:
    lock = threading.Lock()

    def double(rows):
        with lock:
            return rows * 2

    X, y = load_iris(return_X_y=True)
    pipeline = Pipeline([("double", FunctionTransformer(double)), ("lr", LogisticRegression())])
    with pytest.warns(AutologWarning, match="could not log the model: TypeError: cannot pickle"):
        pipeline.fit(X, y)
    copied, size = hooks.snapshot(pipeline)
    assert size is None
    assert np.array_equal(copied.predict(X), pipeline.predict(X))
    [run] = _runs(autologged)
    assert set(run.data.metrics) == CLASSIFIER_METRICS  # the background had its copy
    assert "model/MLmodel" not in _artifacts(autologged, run.info.run_id)
