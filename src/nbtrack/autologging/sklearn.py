"""scikit-learn autologging: ``fit``, ``fit_transform`` and ``fit_predict``, patched.

The patched method calls the original exactly once, with the caller's arguments, and
returns its result or lets its exception through unchanged. Around it, in the caller's
thread, only cheap work happens: choosing the run, logging ``get_params()`` and the
estimator tags, copying the training data and (after the fit) the estimator, and logging
the model package (the model API writes to the active run). What takes time (training
metrics, plots, a search's child runs) runs in the background (``worker``) on those
copies; the run ends only when it has landed.

Which estimators and which calls log follows MLflow's sklearn autolog: every estimator
``sklearn.utils.all_estimators()`` lists plus Pipeline and the two searches, except
preprocessing, imputation, feature extraction and selection, and ColumnTransformer.
Fits inside an autologged fit (a pipeline's steps, a search's candidates) and inside
cross-validation helpers (``cross_val_score`` and friends) log nothing.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import os
import pickle
import warnings
from typing import Any

import cloudpickle

from nbtrack.autologging import AutologConfig, worker
from nbtrack.autologging.patches import Patches, find_methods, guarded, warn
from nbtrack.autologging.sklearn_estimators import (
    class_path,
    fit_inputs,
    fitting,
    is_search,
    log_params,
)
from nbtrack.tracking import fluent
from nbtrack.tracking.session import ActiveRun, status_for

FIT_METHODS = ("fit", "fit_transform", "fit_predict")
CV_HELPERS = (
    "cross_validate",
    "cross_val_predict",
    "cross_val_score",
    "learning_curve",
    "permutation_test_score",
    "validation_curve",
)
EXCLUDED_MODULES = (
    "sklearn.preprocessing",
    "sklearn.impute",
    "sklearn.feature_extraction",
    "sklearn.feature_selection",
)
EXCLUDED_CLASSES = ("sklearn.compose._column_transformer.ColumnTransformer",)

_patches = Patches()
_config: AutologConfig | None = None


def enable(config: AutologConfig) -> None:
    """Patch every autologged estimator's fit methods (once; later calls update config)."""
    global _config
    _config = config
    from nbtrack.autologging import sklearn_metrics

    if config.log_post_training_metrics:
        sklearn_metrics.enable(estimator_classes(), config.silent, config.log_datasets)
    else:
        sklearn_metrics.disable()
    if len(_patches):
        return
    _import_plotting()
    for owner, name, original in find_methods(estimator_classes(), FIT_METHODS):
        _patches.replace(owner, name, _logged_fit(original))
    from sklearn import model_selection
    from sklearn.model_selection import _validation

    for module in (model_selection, _validation):
        for name in CV_HELPERS:
            if hasattr(module, name):
                _patches.replace(module, name, _quiet(getattr(module, name)))


def disable() -> None:
    """Put every original method back."""
    global _config
    from nbtrack.autologging import sklearn_metrics

    sklearn_metrics.disable()
    _patches.restore()
    _config = None


@functools.cache
def estimator_classes() -> tuple[type, ...]:
    """The classes MLflow's sklearn autolog patches, sorted by qualified name."""
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.utils import all_estimators

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classes = {cls for _, cls in all_estimators()}
    classes |= {GridSearchCV, RandomizedSearchCV, Pipeline}
    kept = [
        cls
        for cls in classes
        if not cls.__module__.startswith(EXCLUDED_MODULES)
        and f"{cls.__module__}.{cls.__name__}" not in EXCLUDED_CLASSES
    ]
    return tuple(sorted(kept, key=lambda c: f"{c.__module__}.{c.__name__}"))


def _import_plotting() -> None:
    # pyplot must first be imported in the user's thread (in IPython it registers event
    # hooks); the background plots then only draw on their own Figure objects.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guarded("import matplotlib.pyplot", __import__, "matplotlib.pyplot", silent=True)


# -- the wrappers ----------------------------------------------------------------------------


def _logged_fit(original: Any) -> Any:
    @functools.wraps(original)
    def fit_and_log(self, *args, **kwargs):
        config = _config
        if fitting.depth or config is None:
            return original(self, *args, **kwargs)
        session = guarded(
            "start logging the fit", _Fit.start, self, args, kwargs, config, silent=config.silent
        )
        try:
            with fitting:
                result = original(self, *args, **kwargs)
        except BaseException as error:
            if session is not None:
                guarded("record the failed fit", session.failed, error, silent=config.silent)
            raise
        if session is not None:
            guarded("log the fit", session.finished, silent=config.silent)
        return result

    fit_and_log.__nbtrack_original__ = original  # type: ignore[attr-defined]
    return fit_and_log


def _quiet(helper: Any) -> Any:
    """A cross-validation helper during which fits are not logged (as in MLflow)."""

    @functools.wraps(helper)
    def quiet(*args, **kwargs):
        with fitting:
            return helper(*args, **kwargs)

    return quiet


class _Fit:
    """One autologged fit: the run it logs into and the data it was given."""

    def __init__(
        self, estimator: Any, run: ActiveRun, managed: bool, config: AutologConfig
    ) -> None:
        self.estimator = estimator
        self.run = run
        self.managed = managed
        self.config = config
        self.X = self.y = self.sample_weight = None

    @classmethod
    def start(cls, estimator: Any, args: tuple, kwargs: dict, config: AutologConfig) -> _Fit | None:
        run, managed = _target_run(config)
        if run is None:
            return None
        session = cls(estimator, run, managed, config)
        # From here on nothing may raise: a run autolog started must reach finished().
        silent = config.silent
        guarded("read the fit's data", session.capture_inputs, args, kwargs, silent=silent)
        guarded("log the estimator's params", session.log_params, silent=silent)
        guarded("tag the run", session.tag, silent=silent)
        return session

    def capture_inputs(self, args: tuple, kwargs: dict) -> None:
        X, y, self.sample_weight = fit_inputs(self.estimator, args, kwargs)
        # Copies, as MLflow takes them: the fit may change the arrays it was given.
        self.X, self.y = copy.deepcopy(X), copy.deepcopy(y)

    def log_params(self) -> None:
        params = self.estimator.get_params(deep=not is_search(self.estimator))
        log_params(self.run.store, self.run.run_id, params, self.config.silent)

    def tag(self) -> None:
        tags = {
            "estimator_name": type(self.estimator).__name__,
            "estimator_class": class_path(self.estimator),
        }
        self.run.store.set_tags(self.run.run_id, tags)

    def finished(self) -> None:
        from nbtrack.autologging import sklearn_logging

        silent = self.config.silent
        # A copy: the user may refit the estimator while the background logs this fit.
        copied = guarded("copy the estimator", snapshot, self.estimator, silent=silent)
        fitted, size = copied or (None, None)
        if self.config.log_models:
            # The model API logs into the active run, so this part cannot wait for the
            # background thread: while the fit's run is active, log the package now.
            guarded("log the model", self.log_model, self.estimator, "model", size, silent=silent)
            best = getattr(self.estimator, "best_estimator_", None)
            if best is not None:
                guarded(
                    "log the best estimator", self.log_model, best, "best_estimator", silent=silent
                )
        if self.config.log_post_training_metrics:
            from nbtrack.autologging import sklearn_metrics

            sklearn_metrics.remember(self.estimator, self.run.store, self.run.run_id)
        if self.managed:  # off the stack; the worker ends it once its logging has landed
            self.run.session.detach(self.run)
        try:
            if fitted is None:
                raise RuntimeError("no copy of the fitted estimator to log from")
            worker.submit(
                self.run.run_id,
                f"log the fit of {type(fitted).__name__}",
                sklearn_logging.log_after_fit,
                self.run,
                fitted,
                self.X,
                self.y,
                self.sample_weight,
                self.config,
                self.managed,
            )
        except Exception:
            if self.managed:  # nobody else will end the run autolog started
                self.run.session.end(self.run, "FINISHED")
            raise

    def failed(self, error: BaseException) -> None:
        if self.managed:
            self.run.session.end(self.run, status_for(type(error)))

    def log_model(self, estimator: Any, name: str, size: int | None = None) -> None:
        """Log a fitted estimator into the fit's run, with MLflow autolog's options: an
        input example, the signature inferred from training rows, a registered version.
        ``size``: its pickle's, when already known."""
        config = self.config
        rows = None
        if self.X is not None and (config.log_input_examples or config.log_model_signatures):
            rows = self.X[:INPUT_EXAMPLE_ROWS]
        signature: Any = False  # MLflow's way to say: record none
        if config.log_model_signatures and rows is not None:
            signature = guarded(
                "infer the model signature",
                _signature,
                estimator,
                rows,
                silent=config.silent,
            )
        log_model(
            estimator,
            name,
            size=size,
            input_example=rows if config.log_input_examples else None,
            signature=False if signature is None else signature,
            registered_model_name=config.registered_model_name,
            serialization_format=config.serialization_format,
        )


def _signature(estimator: Any, rows: Any) -> Any:
    from nbtrack.models import infer_signature

    return infer_signature(rows, estimator.predict(rows))


def _target_run(config: AutologConfig) -> tuple[ActiveRun | None, bool]:
    """The run to log into and whether autolog started it (and so must end it)."""
    session = fluent.default_session()
    active = session.active_run()
    if active is not None:
        return (None, False) if config.exclusive else (active, False)
    if session.run_factory is not None:  # %track on: the cell's own run
        return session.run_to_log(), False
    tags = {**(config.extra_tags or {}), "mlflow.autologging": "sklearn"}
    return session.start_run(tags=tags), True


DEFAULT_MAX_MODEL_MB = 200.0  # NBTRACK_AUTOLOG_MAX_MODEL_MB overrides
INPUT_EXAMPLE_ROWS = 5  # as MLflow's INPUT_EXAMPLE_SAMPLE_ROWS


def log_model(estimator: Any, name: str, size: int | None = None, **options: Any) -> bool:
    """Log a fitted estimator to the active run (the ``sklearn`` flavor) when its pickle is
    under the size cap (``size``, when known; measured otherwise); True if logged, False
    if skipped."""
    from nbtrack.models.api import log_model as log

    if not hasattr(estimator, "predict"):
        return False  # nbtrack packages models that predict (not DBSCAN, TSNE, ...)
    limit = float(os.environ.get("NBTRACK_AUTOLOG_MAX_MODEL_MB", DEFAULT_MAX_MODEL_MB))
    if size is None:
        size = _pickled_size(estimator, int(limit * 1e6) + 1)
    if size > limit * 1e6:
        warn(
            f"autolog: {name} not logged: its pickle is over the {limit:g} MB cap "
            "(NBTRACK_AUTOLOG_MAX_MODEL_MB).",
            _config.silent if _config else False,
        )
        return False
    log(estimator, name=_free_name(name), **options)
    return True


def snapshot(estimator: Any) -> tuple[Any, int | None]:
    """A copy of a fitted estimator and the size of its pickle, from one pickling.

    Pickled as the model package pickles it (cloudpickle: a lambda in a pipeline too),
    with its arrays out of band (protocol 5) and copied once: ~0.4x the time of
    ``copy.deepcopy`` on a random forest. What no pickle carries (a function closing over
    a lock) is deep-copied, with no size."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        data = cloudpickle.dumps(estimator, protocol=5, buffer_callback=buffers.append)
        copies = [bytearray(buffer.raw()) for buffer in buffers]  # writable, the copy's own
        return pickle.loads(data, buffers=copies), len(data) + sum(map(len, copies))
    except Exception:
        return copy.deepcopy(estimator), None


def _free_name(name: str) -> str:
    """``name``, or ``name-2``, ``name-3``... when an earlier fit in the run took it."""
    run = fluent.active_run()
    if run is None:
        return name
    folder, candidate, number = run.store.artifact_dir(run.run_id), name, 1
    while (folder / candidate).exists():
        number += 1
        candidate = f"{name}-{number}"
    return candidate


class _SizeExceeded(Exception):
    pass


class _Counter(io.RawIOBase):
    """A write-only sink that counts bytes and stops pickling once past a limit."""

    def __init__(self, limit: int) -> None:
        self.size, self.limit = 0, limit

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        size = memoryview(data).nbytes  # bytes, or a PickleBuffer of a large array
        self.size += size
        if self.size > self.limit:
            raise _SizeExceeded
        return size


def _pickled_size(obj: Any, limit: int) -> int:
    counter = _Counter(limit)
    with contextlib.suppress(_SizeExceeded):  # past the limit the exact size does not matter
        cloudpickle.dump(obj, counter, protocol=5)
    return counter.size
