"""nbtrack: experiment tracking that lives inside Jupyter.

In a notebook::

    %load_ext nbtrack
    %track experiment churn

    %%track --name rf-baseline --metrics acc
    n_estimators = 200            # literal assignments become params
    acc = fit_and_score(n_estimators)

Anywhere, with MLflow's names (``import nbtrack as mlflow`` works)::

    import nbtrack
    with nbtrack.start_run(run_name="baseline"):
        nbtrack.log_param("lr", 0.1)
        for epoch in range(10):
            nbtrack.log_metric("loss", 1 / (epoch + 1), step=epoch)
    nbtrack.search_runs("metrics.loss < 0.2")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from nbtrack.entities import (
    Experiment,
    Metric,
    MetricHistory,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from nbtrack.errors import MlflowException, NbtrackError
from nbtrack.models import registry_link as _registry_link
from nbtrack.tracking import context as _context
from nbtrack.tracking.fluent import (
    ActiveRun,
    active_run,
    create_experiment,
    delete_experiment,
    delete_run,
    delete_tag,
    disable_system_metrics_logging,
    enable_system_metrics_logging,
    end_run,
    flush,
    get_artifact_uri,
    get_experiment,
    get_experiment_by_name,
    get_metric_history,
    get_parent_run,
    get_run,
    get_tracking_uri,
    last_active_run,
    load_table,
    log_artifact,
    log_artifacts,
    log_dict,
    log_figure,
    log_image,
    log_input,
    log_inputs,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_table,
    log_text,
    restore_experiment,
    restore_run,
    search_experiments,
    search_runs,
    set_experiment,
    set_experiment_tag,
    set_experiment_tags,
    set_tag,
    set_tags,
    set_tracking_uri,
    start_run,
    status,
)
from nbtrack.version import __version__

if TYPE_CHECKING:
    from typing import Any


__all__ = [
    "ActiveRun",
    "Experiment",
    "Metric",
    "MetricHistory",
    "MlflowClient",
    "MlflowException",
    "NbtrackError",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "RunTag",
    "ViewType",
    "__version__",
    "active_run",
    "autolog",
    "compare_runs",
    "create_experiment",
    "delete_experiment",
    "delete_run",
    "delete_tag",
    "disable_system_metrics_logging",
    "doctor",
    "enable_system_metrics_logging",
    "end_run",
    "flush",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_metric_history",
    "get_parent_run",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
    "load_ipython_extension",
    "load_model",
    "load_table",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_inputs",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "metric_curves",
    "register_model",
    "registry_panel",
    "reproduce",
    "restore_experiment",
    "restore_run",
    "run_details",
    "runs_table",
    "search_experiments",
    "search_runs",
    "set_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
    "set_secret_names",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "status",
    "track_cells",
    "unload_ipython_extension",
]


# Loaded on first use: the model and registry API pull in heavier modules, and MLflow's
# submodules (``mlflow.sklearn``, ``mlflow.pyfunc``, ``mlflow.artifacts``, ...) are
# reachable as attributes, as after ``import mlflow``.
_LAZY = {
    "MlflowClient": "nbtrack.registry.client",
    "autolog": "nbtrack.autologging",
    "load_model": "nbtrack.models.api",
    "log_model": "nbtrack.models.api",
    "register_model": "nbtrack.registry.changes",
    # The panels and provenance, as the %track commands show them (runs, show, curves,
    # compare, registry, reproduce, on/off).
    "compare_runs": "nbtrack.widgets",
    "metric_curves": "nbtrack.widgets",
    "registry_panel": "nbtrack.widgets",
    "reproduce": "nbtrack.reproduction",
    "run_details": "nbtrack.widgets",
    "runs_table": "nbtrack.widgets",
    "track_cells": "nbtrack.magics",
    "set_secret_names": "nbtrack.capture.redact",  # what auto-capture redacts
}
_SUBMODULES = frozenset(
    {
        "artifacts",
        "data",
        "entities",
        "exceptions",
        "models",
        "pyfunc",
        "registry",
        "sklearn",
        "sync",
    }
)


# The layers above tracking contribute to every run: where it was started (notebook or
# script), the environment and git (run context), and system metrics when asked for.
_context.register("nbtrack.capture.notebook:run_context")
_context.register("nbtrack.capture.environment:run_context")
_context.observe("nbtrack.autologging.system:on_run_start", "nbtrack.autologging.system:on_run_end")
_registry_link.link("nbtrack.registry.queries:lookup", "nbtrack.registry.changes:register_model")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"nbtrack.{name}")
    raise AttributeError(f"module 'nbtrack' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazily loaded names too, so tab completion and ``dir(nbtrack)`` list them."""
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbtrack``."""
    from nbtrack.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from nbtrack.magics import unload_ipython_extension as unload

    unload(ipython)


def doctor(rebuild: bool = False, progress: bool = True) -> Any:
    """Check the current store, mend what is safe, report the rest (``nbtrack doctor``)."""
    from nbtrack.store import doctor as check
    from nbtrack.tracking.fluent import current_store

    return check(current_store(), rebuild_catalog=rebuild, progress=progress)
