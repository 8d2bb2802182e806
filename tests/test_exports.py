"""The public API: ``__all__`` is complete, MLflow's fluent names line up, imports stay light."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import types

import mlflow
import pytest

import nbtrack

# The fluent names nbtrack promises with MLflow's meaning (README, "MLflow's API, unchanged").
MLFLOW_NAMES = [
    "start_run",
    "end_run",
    "active_run",
    "set_experiment",
    "set_tracking_uri",
    "get_tracking_uri",
    "log_param",
    "log_params",
    "log_metric",
    "log_metrics",
    "set_tag",
    "set_tags",
    "delete_tag",
    "log_artifact",
    "log_artifacts",
    "log_text",
    "log_dict",
    "get_run",
    "search_runs",
    "delete_run",
    "restore_run",
    "last_active_run",
    "get_artifact_uri",
    "create_experiment",
    "get_experiment",
    "get_experiment_by_name",
    "search_experiments",
    "delete_experiment",
    "restore_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
    "log_figure",
    "log_image",
    "log_table",
    "load_table",
    "log_inputs",
    "get_parent_run",
]

# MLflow's submodule functions nbtrack's submodules provide, with the same parameters.
MLFLOW_SUBMODULE_NAMES = [
    ("artifacts", "download_artifacts"),
    ("artifacts", "list_artifacts"),
    ("artifacts", "load_text"),
    ("artifacts", "load_dict"),
    ("artifacts", "load_image"),
    ("pyfunc", "log_model"),
    ("pyfunc", "save_model"),
    ("pyfunc", "load_model"),
]


def test_every_name_in_all_exists() -> None:
    missing = [name for name in nbtrack.__all__ if not hasattr(nbtrack, name)]
    assert missing == []
    assert len(nbtrack.__all__) == len(set(nbtrack.__all__))


def test_every_public_callable_is_in_all() -> None:
    public = {
        name
        for name, value in vars(nbtrack).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and (callable(value) or isinstance(value, type))
    }
    assert sorted(public - set(nbtrack.__all__)) == []


def test_star_import_gives_exactly_all() -> None:
    namespace: dict = {}
    exec("from nbtrack import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(nbtrack.__all__)


def test_flush_and_get_metric_history_exist() -> None:
    # Not fluent functions in MLflow (flush is nbtrack's; history is MlflowClient's).
    assert not hasattr(mlflow, "flush")
    assert list(inspect.signature(nbtrack.flush).parameters) == []
    assert list(inspect.signature(nbtrack.get_metric_history).parameters)[:2] == ["run_id", "key"]
    assert {"flush", "get_metric_history"} <= set(nbtrack.__all__)


def _positional(function) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in inspect.signature(function).parameters.values() if p.kind in kinds]


@pytest.mark.parametrize("name", MLFLOW_NAMES)
def test_mlflow_name_exists_with_the_same_leading_parameters(name: str) -> None:
    assert hasattr(mlflow, name), f"mlflow.{name} is gone from the installed MLflow"
    assert name in nbtrack.__all__
    theirs = _positional(getattr(mlflow, name))
    required = []
    for parameter in theirs:
        if parameter.default is not inspect.Parameter.empty:
            break
        required.append(parameter.name)
    ours = [p.name for p in _positional(getattr(nbtrack, name))]
    assert ours[: len(required)] == required


@pytest.mark.parametrize("name", MLFLOW_NAMES)
def test_shared_optional_parameters_sit_at_mlflows_positions(name: str) -> None:
    # ``import nbtrack as mlflow`` must also work for code that passes optional
    # arguments by position: a parameter both have must be at MLflow's index.
    theirs = [p.name for p in _positional(getattr(mlflow, name))]
    ours = [p.name for p in _positional(getattr(nbtrack, name))]
    misplaced = {
        parameter: (ours.index(parameter), theirs.index(parameter))
        for parameter in ours
        if parameter in theirs and ours.index(parameter) != theirs.index(parameter)
    }
    assert misplaced == {}, f"nbtrack.{name}: (our index, MLflow's index) {misplaced}"


def test_entities_match_mlflows_field_names() -> None:
    from mlflow.entities import Metric as MlflowMetric

    assert set(nbtrack.Metric._fields) == {"key", "value", "timestamp", "step"}
    assert {"key", "value", "timestamp", "step"} <= {
        name for name in dir(MlflowMetric) if not name.startswith("_")
    }
    assert nbtrack.RunStatus.FINISHED == "FINISHED"
    assert (nbtrack.ViewType.ACTIVE_ONLY, nbtrack.ViewType.DELETED_ONLY, nbtrack.ViewType.ALL) == (
        mlflow.entities.ViewType.ACTIVE_ONLY,
        mlflow.entities.ViewType.DELETED_ONLY,
        mlflow.entities.ViewType.ALL,
    )
    assert nbtrack.MlflowException is nbtrack.NbtrackError


def test_import_is_light() -> None:
    heavy = ["pandas", "IPython", "ipywidgets", "altair", "sklearn", "matplotlib", "numpy"]
    deferred = ["psutil", "filelock", "yaml", "tqdm", "mlflow"]
    code = (
        "import json, sys; import nbtrack; "
        f"print(json.dumps({{m: m in sys.modules for m in {heavy + deferred!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(result.stdout)
    assert loaded == dict.fromkeys(heavy + deferred, False)


@pytest.mark.parametrize(("module", "name"), MLFLOW_SUBMODULE_NAMES)
def test_submodule_functions_take_mlflows_positional_parameters(module: str, name: str) -> None:
    import importlib

    theirs = [
        p.name for p in _positional(getattr(importlib.import_module(f"mlflow.{module}"), name))
    ]
    ours = [p.name for p in _positional(getattr(getattr(nbtrack, module), name))]
    shared = [p for p in ours if p in theirs]
    assert shared == theirs[: len(shared)], f"nbtrack.{module}.{name}: {ours} vs MLflow's {theirs}"
