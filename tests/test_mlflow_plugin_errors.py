"""Bad input through real MLflow on an nbtrack store: MLflow's exception type and error code,
nbtrack's message naming the key or value and the rule, and the store left as it was."""

from __future__ import annotations

import pickle
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from nbtrack.tracking.session import open_store
from plugin_fixtures import mlflow_on_nbtrack

pytestmark = pytest.mark.slow  # real MLflow end to end

UNKNOWN = "0" * 32


@pytest.fixture
def store_dir(tmp_path: Path):
    with mlflow_on_nbtrack(tmp_path) as store_dir:
        yield store_dir


@pytest.fixture
def run_id(store_dir: Path) -> str:
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_metric("loss", 0.1)
    return run.info.run_id


def _snapshot(store_dir: Path) -> dict[str, bytes]:
    """Every journal (runs, experiments, registry) and the catalog's rows, as bytes."""
    store = open_store(store_dir.resolve())
    store.flush()
    files = {
        p.relative_to(store_dir).as_posix(): p.read_bytes()
        for p in store_dir.rglob("*.jsonl")
        if "traces" not in p.parts and "environments" not in p.parts
    }
    rows = {r["run_id"]: repr(sorted(r.items())) for r in store.runs()}
    experiments = {e["experiment_id"]: repr(sorted(e.items())) for e in store.experiments()}
    return {**files, "rows": repr(rows).encode(), "experiments": repr(experiments).encode()}


def _refused(code: str, match: str, call, *args, **kwargs) -> MlflowException:
    with pytest.raises(MlflowException) as raised:
        call(*args, **kwargs)
    assert raised.value.error_code == code, raised.value.message
    assert match in raised.value.message, raised.value.message
    return raised.value


BAD_LOGGING = [
    ("bad metric key", "log_metric", ("bad key!", 1.0), "Invalid metric key 'bad key!'"),
    ("path-like key", "log_metric", ("a/../b", 1.0), "must not look like a path"),
    ("long metric key", "log_metric", ("k" * 251, 1.0), "keys are 1 to 250 characters"),
    ("bad param key", "log_param", ("", 1), "Invalid param key ''"),
    ("long param value", "log_param", ("p", "v" * 6001), "param values may have at most 6000"),
    ("long tag value", "set_tag", ("t", "v" * 8001), "tag values may have at most 8000"),
    ("non-numeric metric", "log_metric", ("m", "abc"), "metric values must be real numbers"),
    ("changed param", "log_param", ("alpha", 0.7), "Changing param values is not allowed"),
]


@pytest.mark.parametrize(("what", "call", "args", "message"), BAD_LOGGING, ids=lambda x: x)
def test_bad_logging_is_refused_and_changes_nothing(
    store_dir: Path, run_id: str, what: str, call: str, args: tuple, message: str
) -> None:
    client = MlflowClient()
    before = _snapshot(store_dir)
    _refused("INVALID_PARAMETER_VALUE", message, getattr(client, call), run_id, *args)
    assert _snapshot(store_dir) == before


def test_a_bad_batch_writes_nothing(store_dir: Path, run_id: str) -> None:
    client = MlflowClient()
    before = _snapshot(store_dir)
    mixed = [Metric("good", 1.0, 0, 0), Metric("bad key!", 1.0, 0, 0)]
    _refused("INVALID_PARAMETER_VALUE", "'bad key!'", client.log_batch, run_id, mixed)
    twice = [Param("p", "1"), Param("p", "2")]
    _refused("INVALID_PARAMETER_VALUE", "appears twice", client.log_batch, run_id, params=twice)
    tags = [RunTag("fine", "x"), RunTag("t", "v" * 8001)]
    _refused("INVALID_PARAMETER_VALUE", "at most 8000", client.log_batch, run_id, tags=tags)
    assert _snapshot(store_dir) == before


def test_bad_filters_get_invalid_parameter_value(store_dir: Path, run_id: str) -> None:
    bad = "metrics.x >"
    error = _refused("INVALID_PARAMETER_VALUE", "^", mlflow.search_runs, filter_string=bad)
    assert "metrics.x >" in error.message  # the filter echoed with a caret under the fault
    _refused(
        "INVALID_PARAMETER_VALUE",
        "order_by",
        mlflow.search_runs,
        order_by=["nonsense.key DESC"],
    )
    _refused(
        "INVALID_PARAMETER_VALUE",
        "max_results",
        MlflowClient().search_runs,
        ["0"],
        max_results=100_000,
    )


def test_unknown_ids_are_resource_does_not_exist(store_dir: Path, run_id: str) -> None:
    client = MlflowClient()
    before = _snapshot(store_dir)
    missing = "RESOURCE_DOES_NOT_EXIST"
    _refused(missing, f"Run with id={UNKNOWN} not found", client.get_run, UNKNOWN)
    _refused(missing, UNKNOWN, client.log_param, UNKNOWN, "a", 1)
    _refused(missing, UNKNOWN, client.log_metric, UNKNOWN, "a", 1.0)
    _refused(missing, UNKNOWN, client.set_terminated, UNKNOWN)
    _refused(missing, UNKNOWN, client.delete_run, UNKNOWN)
    _refused(missing, "No experiment with id '999'", client.get_experiment, "999")
    _refused(missing, "No experiment with id '999'", mlflow.set_experiment, experiment_id="999")
    _refused(missing, "No tag with name", client.delete_tag, run_id, "never-set")
    _refused(missing, "Registered model 'nope' not found", client.get_registered_model, "nope")
    _refused(missing, "No logged model", client.get_logged_model, "m-" + UNKNOWN)
    assert _snapshot(store_dir) == before


def test_logging_to_a_deleted_run_is_refused(store_dir: Path) -> None:
    client = MlflowClient()
    with mlflow.start_run() as run:
        client.delete_run(run.info.run_id)
        before = _snapshot(store_dir)
        _refused("INVALID_PARAMETER_VALUE", "is deleted", mlflow.log_metric, "m", 1.0)
        _refused("INVALID_PARAMETER_VALUE", "is deleted", mlflow.log_param, "p", 1)
        assert _snapshot(store_dir) == before
        client.restore_run(run.info.run_id)


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


class Planted:
    """A pickle that leaves a file behind when it is loaded: what a tampered model does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_tampered_model_file_is_refused_before_it_is_unpickled(
    store_dir: Path, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"x": [1.0]})
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=Echo(), registered_model_name="echo")
    folder = open_store(store_dir.resolve()).artifact_dir(run.info.run_id) / "model"
    assert list(mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(frame)["x"])
    marker = tmp_path / "unpickled"
    (folder / "python_model.pkl").write_bytes(pickle.dumps(Planted(marker)))
    before = _snapshot(store_dir)
    for uri in (f"runs:/{run.info.run_id}/model", "models:/echo/1"):
        error = _refused("INVALID_STATE", "python_model.pkl", mlflow.pyfunc.load_model, uri)
        assert "changed since it was logged" in error.message
    assert not marker.exists()
    assert _snapshot(store_dir) == before


def test_a_file_nobody_logged_is_never_handed_out(store_dir: Path) -> None:
    with mlflow.start_run() as run:
        mlflow.log_text("kept", "model/notes.txt")
    folder = open_store(store_dir.resolve()).artifact_dir(run.info.run_id) / "model"
    (folder / "planted.py").write_text("import os")
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model"))
    assert sorted(p.name for p in local.iterdir()) == ["notes.txt"]
    listed = [f.path for f in MlflowClient().list_artifacts(run.info.run_id, "model")]
    assert listed == ["model/notes.txt"]
