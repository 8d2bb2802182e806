"""Autologging: hooks into libraries that record what a run trained, plotted, read and used.

=============  ==================================================================
sklearn        ``fit``/``fit_transform``/``fit_predict``: what MLflow's sklearn autolog
               logs (params, training metrics, tags, estimator.html, plots, searches)
matplotlib     figures a tracked cell displays, as content-hashed PNG artifacts
pandas         DataFrames ``pandas.read_*`` returns inside a tracked cell, as run inputs
system         wall and CPU time and peak memory per run; ``system/*`` samples
=============  ==================================================================

``%track autolog on [sklearn,matplotlib,pandas,system]`` or ``nbtrack.autologging()`` turns
them on, ``off`` or ``disable=True`` off again (the original methods come back). Inside
a ``%%track`` cell or an active run the hooks log into that run; a fit outside one gets a
run of its own, as in MLflow. A hook that fails warns; the user's code runs unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any, NamedTuple

from nbtrack.errors import InvalidParameterError

__all__ = [
    "INTEGRATIONS",
    "AutologConfig",
    "autolog",
    "enabled_integrations",
    "sklearn_autolog",
    "wait",
]

INTEGRATIONS = ("sklearn", "matplotlib", "pandas", "system")
_MODULES = {
    "sklearn": "nbtrack.autologging.sklearn",
    "matplotlib": "nbtrack.autologging.figures",
    "pandas": "nbtrack.autologging.datasets",
    "system": "nbtrack.autologging.system",
}
_LIBRARIES = {
    "sklearn": "sklearn",
    "matplotlib": "matplotlib",
    "pandas": "pandas",
    "system": "psutil",
}
# MLflow's flavor names for the same integrations (``exclude_flavors``).
_ALIASES = {"scikit-learn": "sklearn", "datasets": "pandas", "figures": "matplotlib"}


class AutologConfig(NamedTuple):
    """What the integrations log; the fields are MLflow's ``autolog`` arguments."""

    log_models: bool = True
    log_datasets: bool = True
    exclusive: bool = False
    silent: bool = False
    max_tuning_runs: int | None = 5
    pos_label: Any = None
    log_post_training_metrics: bool = True  # sklearn: metrics of predictions on other data
    extra_tags: dict[str, str] | None = None  # set on each run autolog starts
    log_input_examples: bool = False  # save a few training rows with each model
    log_model_signatures: bool = True  # infer each model's signature from training rows
    registered_model_name: str | None = None  # register each logged model as a version
    serialization_format: str = "cloudpickle"


_enabled: dict[str, AutologConfig] = {}


def autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    log_traces: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    extra_tags: dict[str, Any] | None = None,
    exclude_flavors: Sequence[str] | None = None,
    *,
    integrations: str | Sequence[str] | None = None,
) -> None:
    """Turn autologging on (or off with ``disable=True``), MLflow's ``mlflow.autolog``.

    Parameters
    ----------
    log_models
        Log each fitted estimator with ``log_model`` (up to a size cap).
    log_datasets
        Record what ``fit`` and ``pandas.read_*`` received as run inputs.
    disable
        Turn the integrations off and restore every patched method.
    exclusive
        Log only into runs autologging starts, never into a run the user started.
    silent
        No warnings from autologging.
    extra_tags
        Tags set on each run autologging starts.
    exclude_flavors
        Integrations to leave alone (MLflow's name for them).
    integrations
        Which of ``sklearn``, ``matplotlib``, ``pandas``, ``system`` (a list or a comma
        string); by default every one whose library is installed.

    Raises
    ------
    InvalidParameterError
        For an unknown integration, or one named explicitly whose library is missing.
    """
    names = resolve(integrations, exclude_flavors)
    if disable:
        for name in names:
            _disable(name)
        return
    config = AutologConfig(
        log_models=log_models,
        log_datasets=log_datasets,
        exclusive=exclusive,
        silent=silent,
        extra_tags={str(k): str(v) for k, v in (extra_tags or {}).items()},
        log_input_examples=log_input_examples,
        log_model_signatures=log_model_signatures,
    )
    for name in names:
        enable(name, config)


def sklearn_autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    max_tuning_runs: int | None = 5,
    log_post_training_metrics: bool = True,
    serialization_format: str = "cloudpickle",
    registered_model_name: str | None = None,
    pos_label: Any = None,
    extra_tags: dict[str, Any] | None = None,
) -> None:
    """scikit-learn alone, with ``mlflow.sklearn.autolog``'s arguments.

    ``max_tuning_runs`` bounds a search's child runs (None: every candidate) and
    ``pos_label`` switches the training precision, recall and F1 to binary averaging.
    ``log_post_training_metrics`` records what ``sklearn.metrics`` functions and
    ``score`` compute from an autologged estimator's predictions on other data, as MLflow
    does (``accuracy_score_X_test``; see ``nbtrack.autologging.sklearn_metrics``).
    ``log_input_examples`` saves the first training rows with each model,
    ``log_model_signatures`` infers its signature from them, ``registered_model_name``
    registers each logged model as a new version, and ``serialization_format`` is the
    package's (``cloudpickle`` or ``pickle``), as in MLflow.
    """
    if max_tuning_runs is not None and max_tuning_runs < 0:
        raise InvalidParameterError(
            f"max_tuning_runs must be non-negative or None, got {max_tuning_runs}."
        )
    if disable:
        _disable("sklearn")
        return
    enable(
        "sklearn",
        AutologConfig(
            log_models=log_models,
            log_datasets=log_datasets,
            exclusive=exclusive,
            silent=silent,
            max_tuning_runs=max_tuning_runs,
            pos_label=pos_label,
            log_post_training_metrics=log_post_training_metrics,
            extra_tags={str(k): str(v) for k, v in (extra_tags or {}).items()},
            log_input_examples=log_input_examples,
            log_model_signatures=log_model_signatures,
            registered_model_name=registered_model_name,
            serialization_format=serialization_format,
        ),
    )


def resolve(
    integrations: str | Sequence[str] | None, exclude: Sequence[str] | None = None
) -> list[str]:
    """Integration names from a list or comma string; all installed ones for None."""
    if integrations is None:
        names = [n for n in INTEGRATIONS if _installed(n)]
    else:
        given = integrations.split(",") if isinstance(integrations, str) else integrations
        names = [_canonical(n) for n in given if str(n).strip()]
        missing = [n for n in names if not _installed(n)]
        if missing:
            raise InvalidParameterError(
                f"autolog {', '.join(missing)}: {', '.join(_LIBRARIES[n] for n in missing)} "
                "is not installed."
            )
    excluded = {_canonical(n) for n in exclude or ()}
    return [n for n in dict.fromkeys(names) if n not in excluded]


def _canonical(name: str) -> str:
    name = _ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if name not in INTEGRATIONS:
        raise InvalidParameterError(
            f"Unknown autolog integration {name!r}; choose from {', '.join(INTEGRATIONS)}."
        )
    return name


def _installed(name: str) -> bool:
    return importlib.util.find_spec(_LIBRARIES[name]) is not None


def enable(name: str, config: AutologConfig) -> None:
    """Turn one integration on (again, with ``config``)."""
    module = importlib.import_module(_MODULES[name])
    module.enable(config)
    _enabled[name] = config
    _hook_run_ends()


def _disable(name: str) -> None:
    if _enabled.pop(name, None) is not None:
        importlib.import_module(_MODULES[name]).disable()


def enabled_integrations() -> tuple[str, ...]:
    """The integrations that are on, in a fixed order."""
    return tuple(n for n in INTEGRATIONS if n in _enabled)


def wait(run_id: str | None = None, timeout: float | None = None) -> None:
    """Block until autolog's background logging (of one run, or all) has landed."""
    from nbtrack.autologging import worker

    worker.wait(run_id, timeout)


def _hook_run_ends() -> None:
    from nbtrack.autologging import worker
    from nbtrack.tracking import fluent

    hooks = fluent.default_session().run_end_hooks
    if worker.on_run_end not in hooks:
        hooks.append(worker.on_run_end)


def track_autolog(magics: Any, argv: list[str], rest: str) -> None:
    """``%track autolog on|off [sklearn,matplotlib,pandas,system]``."""
    from IPython.core.error import UsageError

    if not argv or argv[0] not in ("on", "off") or len(argv) > 2:
        raise UsageError("usage: %track autolog on|off [sklearn,matplotlib,pandas,system]")
    chosen = argv[1] if len(argv) == 2 else None
    try:
        autolog(disable=argv[0] == "off", integrations=chosen)
    except InvalidParameterError as error:
        raise UsageError(str(error)) from None
    on = enabled_integrations()
    print(f"autolog: {', '.join(on) if on else 'off'}")
