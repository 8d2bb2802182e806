"""Post-training metrics: after an autologged fit, what ``sklearn.metrics`` functions and
``score`` compute from the model's predictions on other data logs into the fit's run under
MLflow's names, in a script and across notebook cells. That the names and values equal
real MLflow's is checked in test_autolog_parity."""

from __future__ import annotations

import json
import warnings

import pytest
from sklearn import metrics
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import nbtrack
from nbtrack.autologging import sklearn_metrics
from nbtrack.autologging.patches import AutologWarning
from nbtrack.store import Store
from test_autolog_sklearn import CLASSIFIER_METRICS, _own_methods, _runs
from test_kernel import Kernel, runs_by_name


@pytest.fixture
def autologged(tracking):
    nbtrack.autolog(integrations="sklearn")
    yield tracking
    nbtrack.autolog(disable=True)


@pytest.fixture(scope="module")
def split():
    X, y = load_breast_cancer(return_X_y=True)
    return train_test_split(X, y, random_state=0)


def _model():
    return make_pipeline(StandardScaler(), LogisticRegression())


def _metric_info(api, run_id: str) -> dict[str, str]:
    path = api.MlflowClient().download_artifacts(run_id, "metric_info.json")
    with open(path) as handle:
        return json.load(handle)


def test_metrics_of_predictions_log_into_the_fits_run(autologged, split) -> None:
    X_train, X_test, y_train, y_test = split
    model = _model().fit(X_train, y_train)
    predicted = model.predict(X_test)
    accuracy = metrics.accuracy_score(y_test, predicted)
    again = metrics.accuracy_score(y_test, predicted)
    f1 = metrics.f1_score(y_test, predicted, average="macro")
    metrics.accuracy_score(y_test, y_test)  # not from a prediction: not logged
    probabilities = model.predict_proba(X_test)
    loss = metrics.log_loss(y_test, probabilities)
    score = model.score(X_test, y_test)
    X_test = X_test[:40]  # another object under a name already used
    smaller = model.score(X_test, y_test[:40])

    [run] = _runs(autologged)
    logged = {k: v for k, v in run.data.metrics.items() if not k.startswith("training_")}
    assert logged == {
        "accuracy_score_X_test": accuracy,
        "accuracy_score-2_X_test": again,
        "f1_score_X_test": f1,
        "log_loss_X_test": loss,
        "Pipeline_score_X_test": score,
        "Pipeline_score-2_X_test-2": smaller,
    }
    assert run.info.status == "FINISHED"  # the run autolog started has ended; metrics join it
    assert _metric_info(autologged, run.info.run_id) == {
        "Pipeline_score-2_X_test-2": "Pipeline.score(X=X_test, y=<ndarray>)",
        "Pipeline_score_X_test": "Pipeline.score(X=X_test, y=y_test)",
        "accuracy_score-2_X_test": "accuracy_score(y_true=y_test, y_pred=predicted)",
        "accuracy_score_X_test": "accuracy_score(y_true=y_test, y_pred=predicted)",
        "f1_score_X_test": "f1_score(y_true=y_test, y_pred=predicted, average='macro')",
        "log_loss_X_test": "log_loss(y_true=y_test, y_proba=probabilities)",
    }
    inputs = autologged.get_run(run.info.run_id).inputs.dataset_inputs
    contexts = [d.tags[0].value for d in inputs]
    assert sorted(contexts) == ["eval", "train"]  # X_test once, for its two predictions


@pytest.mark.slow
def test_data_passed_through_a_helper_is_named_where_it_was_defined(autologged, split) -> None:
    X_train, X_test, y_train, y_test = split
    model = _model().fit(X_train, y_train)

    def evaluate(fitted, features, truth):
        return fitted.score(features, truth)

    holdout = X_test
    evaluate(model, holdout, y_test)
    [run] = _runs(autologged)
    assert "Pipeline_score_X_test" in run.data.metrics  # the first name bound to it


@pytest.mark.slow
def test_estimators_fitted_without_it_and_the_switch_log_nothing(autologged, split) -> None:
    X_train, X_test, y_train, y_test = split
    logged = _model().fit(X_train, y_train)
    nbtrack.autolog(disable=True)
    unlogged = _model().fit(X_train, y_train)  # fitted with autolog off: no run to join
    nbtrack.autolog(integrations="sklearn")
    unlogged.score(X_test, y_test)
    metrics.accuracy_score(y_test, unlogged.predict(X_test))
    nbtrack.autologging.sklearn_autolog(log_post_training_metrics=False)
    logged.score(X_test, y_test)
    metrics.accuracy_score(y_test, logged.predict(X_test))
    [run] = _runs(autologged)
    # The exact set: the training metrics computed after the fit log under their own names.
    assert set(run.data.metrics) == CLASSIFIER_METRICS


def test_turning_autolog_off_restores_predict_score_and_the_metric_functions(tracking) -> None:
    originals = dict(sklearn_metrics.metric_functions(metrics))
    methods = (*sklearn_metrics.PREDICT_METHODS, "score")
    before = _own_methods(methods)
    nbtrack.autolog(integrations="sklearn")
    assert metrics.accuracy_score is not originals["accuracy_score"]
    assert LogisticRegression.predict is not before[(LogisticRegression, "predict")]
    nbtrack.autolog(disable=True)
    assert {name: getattr(metrics, name) for name in originals} == originals
    after = _own_methods(methods)
    assert [key for key in before if before[key] is not after[key]] == []


def test_a_fault_in_the_hook_warns_and_the_metric_is_returned(autologged, split, monkeypatch):
    X_train, X_test, y_train, y_test = split
    model = _model().fit(X_train, y_train)
    predicted = model.predict(X_test)

    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sklearn_metrics, "_log", broken)
    with pytest.warns(AutologWarning, match="could not log the metric: RuntimeError: disk"):
        value = metrics.accuracy_score(y_test, predicted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutologWarning)
        assert value == (predicted == y_test).mean() == model.score(X_test, y_test)


def test_an_evaluation_in_a_later_cell_joins_the_tracked_cells_run(kernel_env) -> None:
    kernel = Kernel(kernel_env)
    try:
        kernel.ok(
            "%load_ext nbtrack\n%track autolog on sklearn\n"
            "from sklearn.datasets import load_breast_cancer\n"
            "from sklearn.metrics import roc_auc_score\n"
            "from sklearn.ensemble import RandomForestClassifier\n"
            "from sklearn.model_selection import train_test_split\n"
            "X, y = load_breast_cancer(return_X_y=True)\n"
            "X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0)"
        )
        kernel.ok(
            "%%track --name forest\n"
            "model = RandomForestClassifier(n_estimators=20, random_state=0)\n"
            "model.fit(X_train, y_train)"
        )
        shown = kernel.ok("roc_auc_score(y_val, model.predict_proba(X_val)[:, 1])")
        auc = kernel.ok("scores = model.predict_proba(X_val)\nroc_auc_score(y_val, scores[:, 1])")
        kernel.ok("auc = roc_auc_score(y_val, model.predict(X_val))")
        kernel.ok("import nbtrack.autologging; nbtrack.autologging.wait(); nbtrack.flush()")
    finally:
        kernel.close()
    [run] = runs_by_name(kernel_env / ".nbtrack").values()
    assert run["status"] == "FINISHED"
    later = {k: p[0] for k, p in run["metrics"].items() if not k.startswith("training_")}
    # A slice of a prediction is a new object, so only the last cell's call is logged.
    assert list(later) == ["roc_auc_score_X_val"]
    assert shown.result and auc.result
    with Store(kernel_env / ".nbtrack") as store:
        inputs = [r for r in store.records(run["run_id"]) if r["op"] == "input"]
    assert [r["tags"]["mlflow.data.context"] for r in inputs] == ["train", "eval"]
