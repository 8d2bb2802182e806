"""What scikit-learn autologging knows of estimators and fits, shared by the fit hooks
(``sklearn.py``), what is logged after a fit (``sklearn_logging.py``) and the
post-training metrics (``sklearn_metrics.py``)."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from nbtrack.autologging.patches import warn
from nbtrack.capture.redact import redact
from nbtrack.validation import MAX_KEY_LENGTH, MAX_PARAM_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH


class _Fitting:
    """Entered while an autologged fit or a cross-validation helper runs: fits inside it
    (a pipeline's steps, a search's candidates, in any thread) log nothing of their own,
    and predictions and scores made there are training, not evaluation."""

    def __init__(self) -> None:
        self.depth = 0

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1


fitting = _Fitting()


def fit_inputs(estimator: Any, args: tuple, kwargs: dict) -> tuple[Any, Any, Any]:
    """(X, y, sample_weight) of a fit call, named by the estimator's ``fit`` signature."""
    names = argument_names(type(estimator).fit)
    x_name, y_name = names[:2] if len(names) >= 2 else ("X", "y")
    if len(args) >= 2:
        X, y = args[:2]
    elif len(args) == 1:
        X, y = args[0], kwargs.get(y_name)
    else:
        X, y = kwargs.get(x_name), kwargs.get(y_name)
    sample_weight = None
    if "sample_weight" in names:
        position = names.index("sample_weight")
        sample_weight = args[position] if len(args) > position else kwargs.get("sample_weight")
    return X, y, sample_weight


@functools.lru_cache(maxsize=512)
def argument_names(function: Any) -> list[str]:
    names = list(inspect.signature(function).parameters)
    return names[1:] if names and names[0] == "self" else names


def is_search(estimator: Any) -> bool:
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    return isinstance(estimator, (GridSearchCV, RandomizedSearchCV))


def class_path(estimator: Any) -> str:
    return f"{type(estimator).__module__}.{type(estimator).__name__}"


def log_params(store: Any, run_id: str, params: dict[str, Any], silent: bool = False) -> None:
    """Log params as MLflow's autologging client does (``str()``, long values cut with
    "..."), except that secrets are ``<redacted>`` (auto-captured values never include
    them: ``capture.redact``); a key the run already has with another value is skipped
    with a warning."""
    clean = {
        _clip(str(k), MAX_KEY_LENGTH): _clip(_param_text(str(k), v), MAX_PARAM_VALUE_LENGTH)
        for k, v in params.items()
    }
    logged = store.get_run(run_id).get("params", {})
    conflicts = sorted(k for k, v in clean.items() if k in logged and logged[k] != v)
    if conflicts:
        warn(
            f"autolog: run {run_id} already has different values for {', '.join(conflicts)}; "
            "those params were not logged again (params are immutable).",
            silent,
        )
    new = {k: v for k, v in clean.items() if k not in logged}
    if new:
        store.log_params(run_id, new)


def _param_text(key: str, value: Any) -> str:
    # str() as MLflow logs it; None and booleans hold no secret, whatever the name.
    return str(value) if value is None or isinstance(value, bool) else redact(key, str(value))


def clip_tag(value: Any) -> str:
    return _clip(str(value), MAX_TAG_VALUE_LENGTH)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
