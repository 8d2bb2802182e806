"""``MlflowClient`` with MLflow's signatures over an nbtrack store, plus nbtrack's ``reason=``."""

from __future__ import annotations

import inspect
from pathlib import Path

import mlflow
import pytest

import nbtrack
from model_helpers import logged_run
from nbtrack import Metric, Param, RunTag
from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.registry import MissingReasonWarning

TRACKING_CALLS = [
    "create_experiment",
    "get_experiment",
    "get_experiment_by_name",
    "search_experiments",
    "delete_experiment",
    "restore_experiment",
    "rename_experiment",
    "set_experiment_tag",
    "create_run",
    "get_run",
    "search_runs",
    "log_param",
    "log_metric",
    "log_batch",
    "set_tag",
    "delete_tag",
    "set_terminated",
    "update_run",
    "delete_run",
    "restore_run",
    "get_metric_history",
    "log_artifact",
    "log_artifacts",
    "log_text",
    "log_dict",
    "list_artifacts",
    "download_artifacts",
    "get_parent_run",
    "log_figure",
    "log_image",
    "log_table",
    "load_table",
]
REGISTRY_CALLS = [
    "create_registered_model",
    "get_registered_model",
    "search_registered_models",
    "rename_registered_model",
    "update_registered_model",
    "delete_registered_model",
    "set_registered_model_tag",
    "delete_registered_model_tag",
    "create_model_version",
    "get_model_version",
    "update_model_version",
    "delete_model_version",
    "transition_model_version_stage",
    "get_latest_versions",
    "search_model_versions",
    "set_registered_model_alias",
    "delete_registered_model_alias",
    "get_model_version_by_alias",
    "set_model_version_tag",
    "delete_model_version_tag",
    "get_model_version_download_uri",
    "copy_model_version",
]
# Every registry call that records an event also takes the reason for it.
REASON_CALLS = [
    "create_registered_model",
    "rename_registered_model",
    "update_registered_model",
    "delete_registered_model",
    "set_registered_model_tag",
    "delete_registered_model_tag",
    "create_model_version",
    "update_model_version",
    "delete_model_version",
    "transition_model_version_stage",
    "set_registered_model_alias",
    "delete_registered_model_alias",
    "set_model_version_tag",
    "delete_model_version_tag",
    "copy_model_version",
]


def _positional(function) -> list[str]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in inspect.signature(function).parameters.values() if p.kind in kinds]


@pytest.mark.parametrize("name", TRACKING_CALLS + REGISTRY_CALLS)
def test_client_methods_take_mlflows_positional_parameters(name: str) -> None:
    theirs = _positional(getattr(mlflow.MlflowClient, name))
    ours = _positional(getattr(nbtrack.MlflowClient, name))
    # Every parameter MLflow code may pass by position is at the same position here.
    shared = [p for p in theirs if p in ours]
    assert [ours.index(p) for p in shared] == [theirs.index(p) for p in shared]
    required = [
        p.name
        for p in inspect.signature(getattr(mlflow.MlflowClient, name)).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind == p.POSITIONAL_OR_KEYWORD
    ]
    assert ours[: len(required)] == required


@pytest.mark.parametrize("name", REASON_CALLS)
def test_registry_calls_also_accept_a_reason(name: str) -> None:
    parameter = inspect.signature(getattr(nbtrack.MlflowClient, name)).parameters["reason"]
    assert parameter.kind == parameter.KEYWORD_ONLY and parameter.default is None


def test_importable_from_mlflows_module_paths() -> None:
    from nbtrack.models import ModelSignature, infer_signature
    from nbtrack.tracking import MlflowClient

    assert MlflowClient is nbtrack.MlflowClient
    assert callable(infer_signature) and isinstance(ModelSignature(), ModelSignature)
    assert nbtrack.register_model is nbtrack.registry.register_model


def test_experiments_and_runs(tracking) -> None:
    client = tracking.MlflowClient()
    experiment_id = client.create_experiment("churn", tags={"team": "growth"})
    assert client.get_experiment_by_name("churn").experiment_id == experiment_id
    client.set_experiment_tag(experiment_id, "owner", "alice")
    client.rename_experiment(experiment_id, "churn-2")
    assert client.get_experiment(experiment_id).tags == {"team": "growth", "owner": "alice"}
    assert [e.name for e in client.search_experiments(filter_string="name LIKE 'churn%'")] == [
        "churn-2"
    ]

    run = client.create_run(experiment_id, run_name="explicit", tags={"k": "v"})
    run_id = run.info.run_id
    assert tracking.active_run() is None  # the client does not make the run active
    client.log_param(run_id, "alpha", 0.5)
    for step in range(3):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step, timestamp=1000 + step)
    client.log_batch(
        run_id,
        metrics=[Metric("acc", 0.9, 2000, 0)],
        params=[Param("beta", "2")],
        tags=[RunTag("stage", "dev")],
    )
    client.set_tag(run_id, "note", "x")
    client.delete_tag(run_id, "note")
    client.set_terminated(run_id)
    fetched = client.get_run(run_id)
    assert fetched.info.status == "FINISHED"
    assert fetched.data.params == {"alpha": "0.5", "beta": "2"}
    assert fetched.data.metrics == {"loss": pytest.approx(1 / 3), "acc": 0.9}
    assert {"k": "v", "stage": "dev"}.items() <= fetched.data.tags.items()
    assert "note" not in fetched.data.tags
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.timestamp) for m in history] == [(0, 1000), (1, 1001), (2, 1002)]
    found = client.search_runs([experiment_id], "params.alpha = '0.5'")
    assert [r.info.run_id for r in found] == [run_id]
    client.update_run(run_id, name="renamed")
    assert client.get_run(run_id).info.run_name == "renamed"
    client.delete_run(run_id)
    assert client.search_runs([experiment_id]) == []
    client.restore_run(run_id)
    with pytest.raises(NotFoundError):
        client.delete_tag(run_id, "absent")


def test_search_experiments_reads_mlflows_experiment_grammar(tracking) -> None:
    client = tracking.MlflowClient()
    churn = client.create_experiment("churn", tags={"team": "growth"})
    client.create_experiment("fraud")
    found = client.search_experiments(filter_string="tags.team IS NULL and name != 'Default'")
    assert [e.name for e in found] == ["fraud"]
    found = client.search_experiments(filter_string=f"experiment_id IN ('{churn}', '999')")
    assert [e.name for e in found] == ["churn"]
    assert client.search_experiments(filter_string="creation_time > 0 and tags.team = 'growth'")
    with pytest.raises(InvalidParameterError, match=r"unknown attribute 'status'; valid attrib"):
        client.search_experiments(filter_string="status = 'active'")


def test_list_and_download_artifacts(tracking, tmp_path: Path) -> None:
    client = tracking.MlflowClient()
    run_id = logged_run(tracking, 0.9)
    client.log_text(run_id, "hello", "notes/a.txt")
    client.log_dict(run_id, {"k": 1}, "config.json")
    top = client.list_artifacts(run_id)
    assert [(f.path, f.is_dir) for f in top] == [
        ("config.json", False),
        ("model", True),
        ("notes", True),
    ]
    assert top[0].file_size == len('{\n  "k": 1\n}')
    model_files = {f.path for f in client.list_artifacts(run_id, "model")}
    assert {"model/MLmodel", "model/model.pkl", "model/requirements.txt"} <= model_files
    local = Path(client.download_artifacts(run_id, "model", str(tmp_path)))
    assert local == tmp_path / "model" and (local / "MLmodel").is_file()
    assert Path(client.download_artifacts(run_id, "notes/a.txt", tmp_path)).read_text() == "hello"
    with pytest.raises(NotFoundError, match="no artifact"):
        client.download_artifacts(run_id, "absent.txt", tmp_path)


def test_figures_images_tables_and_parents_on_a_run_by_id(tracking) -> None:
    import numpy as np

    client = tracking.MlflowClient()
    parent = client.create_run("0")
    child = client.create_run("0", tags={"mlflow.parentRunId": parent.info.run_id})
    run_id = child.info.run_id
    client.log_image(run_id, np.zeros((2, 2, 3), dtype=np.uint8), "img.png")
    client.log_image(run_id, np.zeros((2, 2, 3), dtype=np.uint8), key="k", step=1)
    client.log_table(run_id, {"a": [1, 2]}, "t.json")
    client.log_table(run_id, {"a": [3]}, "t.json")
    assert client.get_parent_run(run_id).info.run_id == parent.info.run_id
    assert client.get_parent_run(parent.info.run_id) is None
    assert client.load_table("0", "t.json")["a"].tolist() == [1, 2, 3]
    paths = [f.path for f in client.list_artifacts(run_id)]
    assert paths == ["images", "img.png", "t.json"]
    assert client.get_run(run_id).data.tags["mlflow.loggedImages"] == "True"
    with pytest.raises(InvalidParameterError, match="figure="):
        client.log_figure(run_id, object(), "f.png")


def test_registry_calls(tracking) -> None:
    client = tracking.MlflowClient()
    run_id = logged_run(tracking, 0.9)
    model = client.create_registered_model("churn", tags={"team": "growth"}, description="d")
    assert model.name == "churn"
    with pytest.raises(nbtrack.MlflowException, match="already exists"):
        client.create_registered_model("churn")
    v1 = client.create_model_version("churn", f"runs:/{run_id}/model", run_id)
    v2 = client.create_model_version(
        "churn", f"mlruns/0/{run_id}/artifacts/model", run_id=run_id, description="mlflow-style"
    )
    assert (v1.version, v2.version, v2.description) == (1, 2, "mlflow-style")
    assert client.get_model_version("churn", "2").source == f"runs:/{run_id}/model"
    with pytest.raises(InvalidParameterError, match="not a model package nbtrack recorded"):
        client.create_model_version("churn", "/somewhere/else")
    with pytest.raises(NotFoundError):
        client.create_model_version("absent", f"runs:/{run_id}/model")
    client.update_model_version("churn", 1, description="first")
    client.set_registered_model_tag("churn", "owner", "bob", reason="handover from alice")
    last = nbtrack.registry.history("churn").iloc[-1]
    assert (last["event"], last["detail"], last["reason"]) == (
        "model.tag",
        "owner=bob",
        "handover from alice",
    )
    client.set_model_version_tag("churn", "1", "validation", "passed")
    assert client.get_model_version("churn", 1).tags == {"validation": "passed"}
    client.delete_model_version_tag("churn", "1", "validation")
    with pytest.warns(MissingReasonWarning):
        client.transition_model_version_stage("churn", 1, "Staging")
    client.set_model_version_tag("churn", key="k", value="v", stage="Staging")
    assert client.get_model_version("churn", 1).tags == {"k": "v"}
    client.set_registered_model_alias("churn", "champion", "2")
    assert client.get_model_version_by_alias("churn", "champion").version == 2
    client.delete_registered_model_alias("churn", "champion")
    assert [v.version for v in client.get_latest_versions("churn")] == [2, 1]  # None, Staging
    uri = client.get_model_version_download_uri("churn", 1)
    assert uri.startswith("file://") and uri.endswith(f"/runs/{run_id}/artifacts/model")
    copy = client.copy_model_version("models:/churn/1", "churn-prod")
    assert (copy.name, copy.version, copy.source) == ("churn-prod", 1, f"runs:/{run_id}/model")
    history = nbtrack.registry.history("churn-prod")
    assert history["detail"].iloc[-1] == f"from runs:/{run_id}/model (copy of models:/churn/1)"
    client.update_registered_model("churn", description="new")
    assert client.get_registered_model("churn").description == "new"
    client.delete_model_version("churn", 2)
    assert [v.version for v in client.search_model_versions("name = 'churn'")] == [1]
    client.delete_registered_model("churn", reason="replaced by churn-prod")
    assert [m.name for m in client.search_registered_models()] == ["churn-prod"]
    assert nbtrack.registry.history("churn")["reason"].iloc[-1] == "replaced by churn-prod"
