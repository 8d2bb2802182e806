"""What scikit-learn autolog records after a fit, key for key as MLflow's sklearn autolog.

Runs in the background worker on a copy of the fitted estimator and of the training data
(the model itself is logged before, in the user's thread, see ``sklearn.log_model``):

* the training dataset as a run input (context ``train``);
* classifiers: ``training_{precision,recall,f1}_score`` (weighted), ``training_accuracy_score``,
  and with ``predict_proba`` ``training_log_loss`` and ``training_roc_auc``; regressors:
  ``training_mean_squared_error``, ``training_root_mean_squared_error``,
  ``training_mean_absolute_error``, ``training_r2_score``; both ``training_score``;
* ``estimator.html``; for classifiers ``training_confusion_matrix.png`` and, with two
  classes, ``training_roc_curve.png`` and ``training_precision_recall_curve.png``;
* searches: ``best_cv_score``, ``best_<param>`` params, ``cv_results.csv`` and a child run
  for each of the best ``max_tuning_runs`` candidates (their params and
  ``mean_test_score``, ``rank_test_score``, ``mean_fit_time``, ... as metrics);

Each part is guarded on its own: one that fails warns and the rest is still logged.
"""

from __future__ import annotations

import functools
import html
import io
import math
import numbers
import time
from typing import TYPE_CHECKING, Any

from nbtrack.autologging import AutologConfig
from nbtrack.autologging.patches import guarded, warn
from nbtrack.autologging.sklearn_estimators import (
    argument_names,
    class_path,
    clip_tag,
    is_search,
    log_params,
)
from nbtrack.capture.redact import redact
from nbtrack.tracking import inputs

if TYPE_CHECKING:
    from nbtrack.tracking.session import ActiveRun

PREFIX = "training_"


def log_after_fit(
    run: ActiveRun,
    estimator: Any,
    X: Any,
    y: Any,
    sample_weight: Any,
    config: AutologConfig,
    managed: bool,
) -> None:
    """Everything logged after a fit; ends the run if autolog started it."""
    store, run_id = run.store, run.run_id
    silent = config.silent
    # Predictions on the training set, made once for the metrics, the score and the plots.
    predictions = Predictions(estimator, X)
    try:
        # One input record of the training data, for the run and each search child run.
        training = None
        if config.log_datasets:
            training = guarded("describe the training dataset", training_input, X, y, silent=silent)
        if training is not None:
            guarded(
                "log the training dataset",
                run.session.add_input,
                store,
                run_id,
                *training,
                silent=silent,
            )
        metrics: dict[str, float] = {}
        if y is not None:
            found = guarded(
                "compute training metrics",
                training_metrics,
                predictions,
                y,
                sample_weight,
                config.pos_label,
                silent=silent,
            )
            metrics.update(found or {})
            score = guarded(
                "compute training_score",
                training_score,
                predictions,
                y,
                sample_weight,
                silent=silent,
            )
            if score is not None:
                metrics[PREFIX + "score"] = score
        log_metrics(store, run_id, metrics)
        if _is_classifier(estimator) and y is not None:
            guarded(
                "plot classifier artifacts",
                log_classifier_plots,
                store,
                run_id,
                predictions,
                y,
                sample_weight,
                silent=silent,
            )
        guarded("save estimator.html", log_estimator_html, store, run_id, estimator, silent=silent)
        if is_search(estimator):
            log_search(run, estimator, training, config)
    finally:
        if managed:
            run.session.end(run, "FINISHED")


class Predictions:
    """A fitted estimator's outputs on its training data, each computed once on demand."""

    def __init__(self, estimator: Any, X: Any) -> None:
        self.estimator, self.X = estimator, X

    @functools.cached_property
    def predicted(self) -> Any:
        return self.estimator.predict(self.X)

    @functools.cached_property
    def probabilities(self) -> Any:
        return self.estimator.predict_proba(self.X)


# -- datasets and metrics ---------------------------------------------------------------------


def training_input(X: Any, y: Any) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The input (dataset fields, input tags; context ``train``) of the data a fit
    received; None if unknown."""
    from nbtrack.data import dataset_for

    dataset = dataset_for(X, y)
    return None if dataset is None else inputs.describe(dataset, "train", None)


def training_metrics(
    predictions: Predictions, y: Any, sample_weight: Any, pos_label: Any = None
) -> dict[str, float]:
    """MLflow's training metrics for a classifier or regressor ({} for other estimators)."""
    from sklearn.base import is_regressor

    if _is_classifier(predictions.estimator):
        return _classifier_metrics(predictions, y, sample_weight, pos_label)
    if is_regressor(predictions.estimator):
        return _regressor_metrics(predictions, y, sample_weight)
    return {}


def _classifier_metrics(predictions, y, sample_weight, pos_label) -> dict[str, float]:
    from sklearn import metrics

    average = "weighted" if pos_label is None else "binary"
    predicted = predictions.predicted
    labelled = {"pos_label": pos_label, "average": average, "sample_weight": sample_weight}
    calls = [
        ("precision_score", metrics.precision_score, (y, predicted), labelled),
        ("recall_score", metrics.recall_score, (y, predicted), labelled),
        ("f1_score", metrics.f1_score, (y, predicted), labelled),
        (
            "accuracy_score",
            metrics.accuracy_score,
            (y, predicted),
            {"normalize": True, "sample_weight": sample_weight},
        ),
    ]
    if hasattr(predictions.estimator, "predict_proba"):
        probabilities = predictions.probabilities
        calls.append(
            ("log_loss", metrics.log_loss, (y, probabilities), {"sample_weight": sample_weight})
        )
        # For two classes roc_auc_score wants the greater label's scores alone.
        scores = probabilities[:, 1] if len(probabilities[0]) == 2 else probabilities
        options = {"average": "weighted", "sample_weight": sample_weight, "multi_class": "ovo"}
        calls.append(("roc_auc", metrics.roc_auc_score, (y, scores), options))
    return _evaluate(calls)


def _regressor_metrics(predictions, y, sample_weight) -> dict[str, float]:
    from sklearn import metrics

    predicted = predictions.predicted
    options = {"sample_weight": sample_weight, "multioutput": "uniform_average"}
    found = _evaluate(
        [
            ("mean_squared_error", metrics.mean_squared_error, (y, predicted), options),
            ("mean_absolute_error", metrics.mean_absolute_error, (y, predicted), options),
            ("r2_score", metrics.r2_score, (y, predicted), options),
        ]
    )
    found[PREFIX + "root_mean_squared_error"] = math.sqrt(found[PREFIX + "mean_squared_error"])
    return found


def _evaluate(calls: list[tuple[str, Any, tuple, dict]]) -> dict[str, float]:
    found = {}
    for name, function, args, kwargs in calls:
        try:
            value = function(*args, **kwargs)
        except Exception as error:  # MLflow skips a metric that fails, with a warning
            warn(f"autolog: {PREFIX}{name} was not recorded: {type(error).__name__}: {error}")
            continue
        found[PREFIX + name] = float(value)
    return found


def training_score(predictions: Predictions, y: Any, sample_weight: Any) -> float | None:
    """``estimator.score`` on the training data, as MLflow logs it (``training_score``)."""
    from sklearn.base import ClassifierMixin, RegressorMixin
    from sklearn.metrics import accuracy_score, r2_score

    estimator, X = predictions.estimator, predictions.X
    score = getattr(type(estimator), "score", None)
    if score is None:
        return None
    # The mixins' own score is accuracy or R² of predict(): reuse the predictions made.
    if score is ClassifierMixin.score:
        return float(accuracy_score(y, predictions.predicted, sample_weight=sample_weight))
    if score is RegressorMixin.score:
        return float(r2_score(y, predictions.predicted, sample_weight=sample_weight))
    if "sample_weight" in argument_names(score):
        return float(estimator.score(X, y, sample_weight))
    return float(estimator.score(X, y))


def log_metrics(store: Any, run_id: str, metrics: dict[str, Any]) -> None:
    now = time.time() * 1000
    points: list = []
    for key, value in metrics.items():
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            points.extend((key, float(value), 0, now))
    if points:
        store.log_points(run_id, points)


def _is_classifier(estimator: Any) -> bool:
    from sklearn.base import is_classifier

    return is_classifier(estimator)


# -- artifacts ----------------------------------------------------------------------------------

PLOT_DPI = 100  # MLflow draws at 175; the names matter, not the pixels (and this is 3x faster)


def log_classifier_plots(store, run_id, predictions: Predictions, y, sample_weight) -> None:
    """The confusion matrix, and for two classes the ROC and precision-recall curves,
    drawn from the predictions already made where the estimator has ``predict_proba``."""
    from sklearn import metrics

    estimator = predictions.estimator
    classes = getattr(estimator, "classes_", None)
    labels = set(y) if classes is None else classes
    weights = {"sample_weight": sample_weight}
    plots = [
        (
            "confusion_matrix",
            "Normalized confusion matrix",
            lambda ax: metrics.ConfusionMatrixDisplay.from_predictions(
                y, predictions.predicted, normalize="true", cmap="Blues", ax=ax, **weights
            ),
            min(8.0, 50.0 / max(len(labels), 1)),
        )
    ]
    if len(set(y)) == 2:
        for name, title, display in (
            ("roc_curve", "ROC curve", metrics.RocCurveDisplay),
            ("precision_recall_curve", "Precision recall curve", metrics.PrecisionRecallDisplay),
        ):
            plots.append((name, title, _curve(display, predictions, y, weights), 8.0))
    for name, title, draw, font_size in plots:
        png = guarded(f"plot {PREFIX}{name}", _plot, draw, title, font_size)
        if png is not None:
            store.add_artifact(run_id, f"{PREFIX}{name}.png", png)


def _curve(display: Any, predictions: Predictions, y: Any, weights: dict) -> Any:
    estimator = predictions.estimator
    if hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_"):
        name = type(estimator).__name__
        positive = estimator.classes_[1]
        return lambda ax: display.from_predictions(
            y, predictions.probabilities[:, 1], pos_label=positive, name=name, ax=ax, **weights
        )
    return lambda ax: display.from_estimator(estimator, predictions.X, y, ax=ax, **weights)


def _plot(draw: Any, title: str, font_size: float) -> bytes:
    # An Agg canvas on a Figure of its own: no pyplot state is touched from this thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 4.0), dpi=PLOT_DPI, layout="tight")
    FigureCanvasAgg(figure)
    display = draw(figure.subplots(1, 1))
    display.ax_.set_title(title, fontsize=font_size)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def log_estimator_html(store: Any, run_id: str, estimator: Any) -> None:
    from sklearn.utils import estimator_html_repr

    body = estimator_html_repr(estimator)
    for value, shown in _redacted_values(estimator):  # as the params log showed them
        body = body.replace(html.escape(value), html.escape(shown))
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n  <head>\n    <meta charset="UTF-8"/>\n  </head>\n'
        f"  <body>\n    {body}\n  </body>\n</html>\n"
    )
    store.add_artifact(run_id, "estimator.html", page.encode("utf-8"))


def _redacted_values(estimator: Any) -> list[tuple[str, str]]:
    """(value, redacted value) of the estimator's string params that redaction changes,
    longest first."""
    params = estimator.get_params(deep=True)
    found = {(v, redact(k, v)) for k, v in params.items() if isinstance(v, str) and v}
    return sorted(((v, r) for v, r in found if r != v), key=lambda p: len(p[0]), reverse=True)


# -- searches ----------------------------------------------------------------------------------


def log_search(run: ActiveRun, search: Any, training: tuple | None, config: AutologConfig) -> None:
    """best_cv_score, best_<param> params, child runs and cv_results.csv of a fitted search."""
    store, run_id = run.store, run.run_id
    silent = config.silent
    if hasattr(search, "best_score_"):
        log_metrics(store, run_id, {"best_cv_score": search.best_score_})
    if hasattr(search, "best_params_"):
        best = {f"best_{k}": v for k, v in search.best_params_.items()}
        guarded("log the best params", log_params, store, run_id, best, silent=silent)
    if hasattr(search, "cv_results_"):
        guarded(
            "create child runs for the search",
            log_candidates,
            run,
            search,
            training,
            config,
            silent=silent,
        )
        guarded("save cv_results.csv", log_cv_results, store, run_id, search, silent=silent)


def log_cv_results(store: Any, run_id: str, search: Any) -> None:
    import pandas as pd

    text = pd.DataFrame.from_dict(search.cv_results_).to_csv(index=False)
    store.add_artifact(run_id, "cv_results.csv", text.encode("utf-8"))


def log_candidates(run: ActiveRun, search: Any, training: tuple | None, config) -> None:
    """One finished child run per best candidate, as MLflow's parameter-search children
    (``training``: the parent's training input, given to each child too)."""
    import pandas as pd

    from nbtrack.tracking.names import random_run_name

    store, run_id = run.store, run.run_id
    parent = store.get_run(run_id)
    seed = search.estimator
    base = seed.get_params(deep=not is_search(seed))
    results = pd.DataFrame.from_dict(search.cv_results_)
    if config.max_tuning_runs is not None:
        rank = "rank_test_score"
        if rank not in results.columns:
            rank = next(c for c in results.columns if "rank_test_" in c)
        results = results.nsmallest(config.max_tuning_runs, rank)
    end_time = int(time.time() * 1000)
    tags = {
        "mlflow.autologging": "sklearn",
        "estimator_name": type(seed).__name__,
        "estimator_class": clip_tag(class_path(seed)),
    }
    for _, row in results.iterrows():
        child = run.session.create_run(
            parent["experiment_id"],
            random_run_name(),
            tags,
            parent_run_id=run_id,
            start_time=parent["start_time"],
            store=store,
        ).run_id
        log_params(store, child, {**base, **row.get("params", {})})
        scores = {
            key: value
            for key, value in row.items()
            if not str(key).startswith(("param", "split")) and isinstance(value, numbers.Number)
        }
        log_metrics(store, child, scores)
        if training is not None:
            run.session.add_input(store, child, *training)
        store.finish_run(child, "FINISHED", end_time)
