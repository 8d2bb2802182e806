"""scikit-learn post-training metrics, recorded as MLflow's sklearn autolog records them.

An autologged fit remembers its estimator with its run. What the estimator's ``predict``
(``predict_proba``, ``predict_log_proba``, ``transform``) returns is remembered with the
name of the variable the data came in (``X_test``), and that data becomes a run input
(context ``eval``). A ``sklearn.metrics`` function given such a result logs its value into
the fit's run as ``<function>_<data>`` (``accuracy_score_X_test``), and
``estimator.score(X_test, y_test)`` logs ``<Class>_score_X_test``. A function's second
call in a run becomes ``accuracy_score-2_…``, another object under a name already used
``…_X_test-2``; ``metric_info.json`` maps each key to the call that made it. The run may
have ended: the metric joins it all the same.

Only ids, names and runs are kept (never the user's data), each dropped when its object is
collected. The ``sklearn.metrics`` functions are replaced in that module, so code that
imported one before autolog was turned on keeps the original, as under MLflow.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import numbers
import sys
import threading
import time
import types
import weakref
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from nbtrack.autologging.patches import Patches, find_methods, guarded
from nbtrack.autologging.sklearn_estimators import fitting

PREDICT_METHODS = ("predict", "predict_proba", "predict_log_proba", "transform")
NOT_METRICS = ("check_scoring", "get_scorer", "make_scorer", "get_scorer_names")
UNKNOWN_DATA = "unknown_dataset"

_patches = Patches()
_silent = False
_log_datasets = True  # what a remembered estimator predicts from is an 'eval' input
_local = threading.local()  # .depth > 0 inside our own call of an original (nested calls)

_runs: dict[int, tuple[Any, str]] = {}  # id(estimator) -> (store, run_id)
_results: dict[int, tuple[Any, str, str]] = {}  # id(prediction) -> (store, run_id, data name)
_data_ids: defaultdict[str, defaultdict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
_calls: defaultdict[str, defaultdict[str, list[tuple[str, str]]]] = defaultdict(
    lambda: defaultdict(list)
)  # run_id -> metric name -> [(key, call)], for metric_info.json


def enable(classes: tuple[type, ...], silent: bool, log_datasets: bool) -> None:
    """Patch the estimators' prediction and score methods and the metric functions."""
    global _silent, _log_datasets
    _silent, _log_datasets = silent, log_datasets
    if len(_patches):
        return
    for owner, name, original in find_methods(classes, PREDICT_METHODS):
        _patches.replace(owner, name, _remembering(original))
    for owner, name, original in find_methods(classes, ("score",)):
        _patches.replace(owner, name, _scoring(original))
    from sklearn import metrics

    for name, function in metric_functions(metrics):
        _patches.replace(metrics, name, _measuring(function))


def disable() -> None:
    _patches.restore()


def metric_functions(metrics: types.ModuleType) -> list[tuple[str, Any]]:
    """The functions of ``sklearn.metrics`` that compute a metric (not classes, plots or
    scorer factories)."""
    found = []
    for name in metrics.__all__:
        value = getattr(metrics, name, None)
        if (
            callable(value)
            and not inspect.isclass(value)
            and not name.startswith("plot_")
            and name not in NOT_METRICS
        ):
            found.append((name, value))
    return found


# -- what the fit hook tells us ----------------------------------------------------------------


def remember(estimator: Any, store: Any, run_id: str) -> None:
    """Evaluations of ``estimator`` from now on log into ``run_id`` (its latest fit's run)."""
    key = id(estimator)
    if key not in _runs:  # present means alive: a collected estimator's entry is dropped
        weakref.finalize(estimator, _runs.pop, key, None)
    _runs[key] = (store, run_id)


# -- the wrappers ----------------------------------------------------------------------------


@contextlib.contextmanager
def _inside() -> Iterator[None]:
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def _paused() -> bool:
    # Inside an autologged fit, predictions and scores are training, not evaluation.
    return fitting.depth > 0 or getattr(_local, "depth", 0) > 0


def _remembering(original: Any) -> Any:
    @functools.wraps(original)
    def predict(self, *args, **kwargs):
        target = _runs.get(id(self))
        if target is None or _paused():
            return original(self, *args, **kwargs)
        with _inside():
            result = original(self, *args, **kwargs)
        data = _first_argument(original, args, kwargs)
        caller = sys._getframe(1)
        guarded(
            "remember a prediction", _remember_result, target, data, result, caller, silent=_silent
        )
        return result

    return predict


def _scoring(original: Any) -> Any:
    @functools.wraps(original)
    def score(self, *args, **kwargs):
        target = _runs.get(id(self))
        if target is None or _paused():
            return original(self, *args, **kwargs)
        with _inside():
            value = original(self, *args, **kwargs)
        if _loggable(value):
            caller = sys._getframe(1)
            guarded(
                "log the score",
                _log_score,
                target,
                self,
                original,
                args,
                kwargs,
                value,
                caller,
                silent=_silent,
            )
        return value

    return score


def _measuring(function: Any) -> Any:
    @functools.wraps(function)
    def metric(*args, **kwargs):
        if _paused() or not _results:
            return function(*args, **kwargs)
        with _inside():
            value = function(*args, **kwargs)
        if _loggable(value):
            caller = sys._getframe(1)
            guarded(
                "log the metric", _log_metric, function, args, kwargs, value, caller, silent=_silent
            )
        return value

    return metric


# -- recording -------------------------------------------------------------------------------


def _remember_result(target: tuple[Any, str], data: Any, result: Any, caller: Any) -> None:
    store, run_id = target
    key = id(result)
    try:
        weakref.finalize(result, _results.pop, key, None)  # ids are reused after collection
    except TypeError:  # a list or tuple: its id cannot be followed safely
        return
    _results[key] = (store, run_id, _data_name(run_id, data, caller))
    if _log_datasets:
        from nbtrack.data import dataset_for
        from nbtrack.tracking import fluent, inputs

        dataset = dataset_for(data)
        if dataset is not None:
            described = inputs.describe(dataset, "eval", None)
            fluent.default_session().add_input(store, run_id, *described)


def _log_score(target, estimator, method, args, kwargs, value, caller) -> None:
    store, run_id = target
    data = _first_argument(method, args, kwargs)
    name = _data_name(run_id, data, caller)
    call = _call_text(method, args, kwargs, caller, owner=type(estimator).__name__)
    _log(store, run_id, f"{type(estimator).__name__}_score", name, call, value)


def _log_metric(function, args, kwargs, value, caller) -> None:
    for argument in (*args, *kwargs.values()):
        if _is_data(argument) and id(argument) in _results:
            store, run_id, name = _results[id(argument)]
            break
    else:
        return  # not computed from a remembered prediction
    call = _call_text(function, args, kwargs, caller)
    _log(store, run_id, function.__name__, name, call, value)


def _log(store: Any, run_id: str, metric: str, data_name: str, call: str, value: Any) -> None:
    calls = _calls[run_id][metric]
    key = f"{_numbered(metric, len(calls))}_{data_name}"
    calls.append((key, call))
    store.log_points(run_id, [key, float(value), 0, time.time() * 1000])
    every_call = sorted(c for per_metric in _calls[run_id].values() for c in per_metric)
    text = json.dumps(dict(every_call), indent=2)
    store.add_artifact(run_id, "metric_info.json", text.encode("utf-8"))


def _data_name(run_id: str, data: Any, caller: Any) -> str:
    """The variable ``data`` was passed in, numbered when another object had that name."""
    name = variable_name(data, caller, UNKNOWN_DATA)
    seen = _data_ids[run_id][name]
    if id(data) not in seen:
        seen.append(id(data))
    return _numbered(name, seen.index(id(data)))


def _numbered(name: str, index: int) -> str:
    # '-' cannot occur in a Python name, so a numbered name never collides with a real one.
    return name if index == 0 else f"{name}-{index + 1}"


def variable_name(value: Any, frame: Any, fallback: str) -> str:
    """The name the caller's code gave ``value``: the first frame outward where it was not
    passed in as an argument is searched for a local bound to that very object."""
    if value is None:
        return fallback
    while frame is not None:
        info = inspect.getargvalues(frame)
        passed = [info.locals[a] for a in info.args]
        if info.varargs:
            passed.extend(info.locals[info.varargs])
        if info.keywords:
            passed.extend(info.locals[info.keywords].values())
        if any(value is p for p in passed):
            frame = frame.f_back
            continue
        return next((k for k, v in frame.f_locals.items() if v is value), fallback)
    return fallback


def _call_text(function, args, kwargs, caller, owner: str | None = None) -> str:
    """``accuracy_score(y_true=y_test, y_pred=predicted)``: data by variable name."""
    names = list(inspect.signature(function).parameters)
    if owner is not None:
        names = names[1:]  # self

    def shown(value: Any) -> str:
        if value is None or not _is_data(value):
            if isinstance(value, str) and len(value) > 32:
                return repr(value[:32] + "...")
            return repr(value)
        return variable_name(value, caller, f"<{type(value).__name__}>")

    parts = [f"{n}={shown(v)}" for n, v in zip(names, args, strict=False)]
    parts += [f"{n}={shown(v)}" for n, v in kwargs.items()]
    prefix = f"{owner}.{function.__name__}" if owner else function.__name__
    return f"{prefix}({', '.join(parts)})"


def _first_argument(method: Any, args: tuple, kwargs: dict) -> Any:
    if args:
        return args[0]
    names = [n for n in inspect.signature(method).parameters if n != "self"]
    return kwargs.get(names[0]) if names else None


def _is_data(value: Any) -> bool:
    import numpy as np

    return value is not None and not np.isscalar(value)


def _loggable(value: Any) -> bool:
    import numpy as np

    return isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_))
