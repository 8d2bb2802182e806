"""Real MLflow on an nbtrack store (the plugin): tracking URIs, experiments, runs, logging,
searches, datasets, artifacts and logged models, each checked in the store nbtrack reads."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

import nbtrack
from nbtrack.store import Store
from nbtrack.tracking.session import close_stores
from plugin_fixtures import CLEARED, mlflow_on_nbtrack

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # real MLflow end to end, models logged and loaded


@pytest.fixture
def store_dir(tmp_path: Path):
    with mlflow_on_nbtrack(tmp_path) as store_dir:
        yield store_dir


def _store(store_dir: Path) -> Store:
    from nbtrack.tracking.session import open_store

    return open_store(store_dir.resolve())


# -- tracking URIs ---------------------------------------------------------------------------


def _script(code: str, cwd: Path, **env: str) -> str:
    variables = {k: v for k, v in os.environ.items() if k not in CLEARED}
    variables["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ["PYTHONPATH"]])
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**variables, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


LOG_ONE_RUN = (
    "import mlflow\n"
    "with mlflow.start_run(run_name='from-env') as run:\n"
    "    mlflow.log_param('alpha', 0.5)\n"
    "    mlflow.log_metric('rmse', 0.25)\n"
    "print(mlflow.get_tracking_uri())\n"
)


@pytest.mark.parametrize(
    ("uri", "folder"),
    [
        ("nbtrack:{tmp}/absolute", "absolute"),
        ("nbtrack:///{tmp}/triple", "triple"),
        ("nbtrack:relative/store", "relative/store"),
        ("nbtrack:", ".nbtrack"),
    ],
)
def test_tracking_uri_from_the_environment_sends_runs_to_the_store(
    tmp_path: Path, uri: str, folder: str
) -> None:
    uri = uri.format(tmp=tmp_path).replace("////", "///")
    printed = _script(LOG_ONE_RUN, tmp_path, MLFLOW_TRACKING_URI=uri)
    assert printed.strip() == uri
    with Store(tmp_path / folder) as store:
        [run] = store.runs()
        assert (run["run_name"], run["status"]) == ("from-env", "FINISHED")
        assert run["params"] == {"alpha": "0.5"}
        assert run["metrics"]["rmse"][0] == 0.25


def test_default_store_follows_nbtrack_dir(tmp_path: Path) -> None:
    _script(LOG_ONE_RUN, tmp_path, MLFLOW_TRACKING_URI="nbtrack:", NBTRACK_DIR="elsewhere")
    with Store(tmp_path / "elsewhere") as store:
        assert [r["run_name"] for r in store.runs()] == ["from-env"]
    assert not (tmp_path / ".nbtrack").exists()


def test_nbtrack_accepts_nbtrack_uris(tracking, tmp_path: Path) -> None:
    tracking.set_tracking_uri(f"nbtrack://{tmp_path}/mine")
    with tracking.start_run():
        tracking.log_param("a", 1)
    assert tracking.get_tracking_uri() == (tmp_path / "mine").resolve().as_uri()
    tracking.set_tracking_uri("nbtrack:relative")
    assert tracking.get_tracking_uri() == (tmp_path / "relative").resolve().as_uri()
    with pytest.raises(nbtrack.MlflowException, match="names a host"):
        tracking.set_tracking_uri("nbtrack://host/path")


# -- experiments -------------------------------------------------------------------------------


def test_experiments_through_mlflow(store_dir: Path) -> None:
    client = MlflowClient()
    first = mlflow.create_experiment("first", tags={"team": "risk"})
    mlflow.set_experiment("second")
    with pytest.raises(MlflowException) as duplicate:
        mlflow.create_experiment("first")
    assert duplicate.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert "'first' already exists" in duplicate.value.message

    experiment = client.get_experiment(first)
    assert (experiment.name, experiment.tags) == ("first", {"team": "risk"})
    assert experiment.artifact_location.startswith("nbtrack-artifacts:///")
    assert client.get_experiment_by_name("second").lifecycle_stage == "active"
    assert client.get_experiment_by_name("nope") is None

    client.rename_experiment(first, "renamed")
    client.set_experiment_tag(first, "owner", "ana")
    client.delete_experiment_tag(first, "team")
    assert client.get_experiment(first).tags == {"owner": "ana"}
    assert _store(store_dir).get_experiment(first)["name"] == "renamed"

    names = [e.name for e in client.search_experiments(order_by=["name ASC"])]
    assert names == ["Default", "renamed", "second"]
    page = client.search_experiments(max_results=2, order_by=["name ASC"])
    assert [e.name for e in page] == ["Default", "renamed"] and page.token
    rest = client.search_experiments(max_results=2, order_by=["name ASC"], page_token=page.token)
    assert [e.name for e in rest] == ["second"] and rest.token is None
    found = client.search_experiments(filter_string="tags.owner = 'ana'")
    assert [e.name for e in found] == ["renamed"]


def test_deleting_an_experiment_deletes_its_runs_as_mlflow_does(store_dir: Path) -> None:
    experiment = mlflow.set_experiment("doomed")
    with mlflow.start_run() as run:
        pass
    client = MlflowClient()
    client.delete_experiment(experiment.experiment_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    assert [e.name for e in client.search_experiments(view_type=2)] == ["doomed"]
    client.restore_experiment(experiment.experiment_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"


# -- runs and logging ----------------------------------------------------------------------------


def test_a_run_logged_through_mlflow_is_in_the_store(store_dir: Path) -> None:
    mlflow.set_experiment("exp")
    with mlflow.start_run(run_name="base", tags={"team": "risk"}, description="first") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"depth": 6, "kind": "rf"})
        for step in range(5):
            mlflow.log_metric("loss", 1 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.9, "auc": 0.8}, step=2)
        mlflow.set_tags({"stage": "dev", "n": 3})
        mlflow.set_tag("temporary", "x")
        mlflow.delete_tag("temporary")
        live = mlflow.get_run(run.info.run_id)  # buffered points are seen at once
        assert live.data.metrics == {"loss": 0.2, "acc": 0.9, "auc": 0.8}
        assert live.info.status == "RUNNING"
    run_id = run.info.run_id
    row = _store(store_dir).get_run(run_id)
    assert row["status"] == "FINISHED" and row["end_time"] >= row["start_time"]
    assert row["run_name"] == "base"
    assert row["params"] == {"alpha": "0.5", "depth": "6", "kind": "rf"}
    assert {k: p[0] for k, p in row["metrics"].items()} == {"loss": 0.2, "acc": 0.9, "auc": 0.8}
    tags = row["tags"]
    assert {k: tags[k] for k in ("team", "stage", "n", "mlflow.runName")} == {
        "team": "risk",
        "stage": "dev",
        "n": "3",
        "mlflow.runName": "base",
    }
    assert tags["mlflow.note.content"] == "first" and "temporary" not in tags
    history = nbtrack.MlflowClient(tracking_uri=str(store_dir)).get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1 / (s + 1)) for s in range(5)]
    environment = [r for r in _store(store_dir).records(run_id) if r["op"] == "environment"]
    assert len(environment) == 1  # nbtrack's run context, as for its own runs


def test_params_are_immutable_and_a_failed_batch_changes_nothing(store_dir: Path) -> None:
    client = MlflowClient()
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "alpha", "0.5")
    journal = _store(store_dir).journal_path(run_id)
    before = journal.read_bytes()
    with pytest.raises(MlflowException) as changed:
        client.log_batch(
            run_id,
            metrics=[Metric("m", 1.0, 0, 0)],
            params=[Param("alpha", "0.7")],
            tags=[RunTag("t", "v")],
        )
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "Changing param values is not allowed" in changed.value.message
    _store(store_dir).flush()
    assert journal.read_bytes() == before
    client.log_param(run_id, "alpha", "0.5")  # the same value again is fine


def test_log_batch_and_run_updates(store_dir: Path) -> None:
    client = MlflowClient()
    run = client.create_run("0", run_name="batch")
    run_id = run.info.run_id
    assert run.info.status == "RUNNING" and run.data.tags["mlflow.runName"] == "batch"
    metrics = [Metric("loss", 1.0 / (i + 1), 1_700_000_000_000 + i, i) for i in range(300)]
    client.log_batch(run_id, metrics=metrics, params=[Param("p", "1")], tags=[RunTag("t", "v")])
    client.set_tag(run_id, "mlflow.runName", "renamed")  # MLflow renames the run
    client.update_run(run_id, status="KILLED")
    got = client.get_run(run_id)
    assert (got.info.run_name, got.info.status) == ("renamed", "KILLED")
    assert got.data.params == {"p": "1"} and got.data.tags["t"] == "v"
    history = client.get_metric_history(run_id, "loss")
    assert [(m.timestamp, m.step, m.value) for m in history] == [
        (m.timestamp, m.step, m.value) for m in metrics
    ]
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert mlflow.search_runs(output_format="list", experiment_ids=["0"]) == []
    client.restore_run(run_id)
    assert [r.info.run_id for r in client.search_runs(["0"])] == [run_id]


def test_metric_history_in_pages_reads_every_point(store_dir: Path) -> None:
    with mlflow.start_run() as run:
        for step in range(60_000):  # more than MLflow's page of 25,000
            mlflow.log_metric("x", float(step), step=step)
    store = mlflow.tracking._get_store()
    first = store.get_metric_history(run.info.run_id, "x", max_results=25_000)
    assert len(first) == 25_000 and first.token is not None
    history = MlflowClient().get_metric_history(run.info.run_id, "x")
    assert [m.step for m in history] == list(range(60_000))


def test_nested_and_resumed_runs(store_dir: Path) -> None:
    with (
        mlflow.start_run(run_name="parent") as parent,
        mlflow.start_run(run_name="child", nested=True) as child,
    ):
        mlflow.log_metric("m", 1)
    with mlflow.start_run(run_id=child.info.run_id):
        mlflow.log_metric("m", 2, step=1)
    store = _store(store_dir)
    row = store.get_run(child.info.run_id)
    assert row["tags"]["mlflow.parentRunId"] == parent.info.run_id
    assert row["status"] == "FINISHED" and row["metrics"]["m"][0] == 2
    found = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert list(found["tags.mlflow.runName"]) == ["child"]


def test_search_runs_uses_mlflow_grammar_and_pages(store_dir: Path) -> None:
    mlflow.set_experiment("search")
    for index in range(7):
        with mlflow.start_run(run_name=f"r{index}"):
            mlflow.log_param("index", index)
            mlflow.log_metric("score", index / 10)
            mlflow.set_tag("parity", "even" if index % 2 == 0 else "odd")
    frame = mlflow.search_runs(
        filter_string="metrics.score >= 0.3 and tags.parity = 'even'",
        order_by=["metrics.score DESC"],
    )
    assert list(frame["tags.mlflow.runName"]) == ["r6", "r4"]
    assert list(frame["params.index"]) == ["6", "4"]
    client = MlflowClient()
    experiment_id = mlflow.get_experiment_by_name("search").experiment_id
    page = client.search_runs([experiment_id], max_results=3, order_by=["params.index ASC"])
    names = [r.info.run_name for r in page]
    while page.token:
        page = client.search_runs(
            [experiment_id], max_results=3, order_by=["params.index ASC"], page_token=page.token
        )
        names += [r.info.run_name for r in page]
    assert names == [f"r{i}" for i in range(7)]


def test_datasets_logged_through_mlflow_are_run_inputs(store_dir: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(frame, name="train", targets="y")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_input(dataset, context="training")  # the same input again: a no-op
    [logged] = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.digest) == ("train", dataset.digest)
    assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "training"}
    [ours] = nbtrack.MlflowClient(str(store_dir)).get_run(run.info.run_id).inputs.dataset_inputs
    assert (ours.dataset.digest, ours.dataset.source_type) == (dataset.digest, "code")


# -- artifacts and models ------------------------------------------------------------------


def _recorded(store_dir: Path, run_id: str) -> dict[str, str]:
    store = _store(store_dir)
    return {r["path"]: r["sha256"] for r in store.records(run_id, "artifact")}


def test_artifacts_land_in_the_run_folder_with_their_sha256(
    store_dir: Path, tmp_path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x\n1\n")
    (tmp_path / "data" / "sub").mkdir()
    (tmp_path / "data" / "sub" / "b.txt").write_text("b")
    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "data" / "a.csv"))
        mlflow.log_artifacts(str(tmp_path / "data"), artifact_path="copy")
        mlflow.log_text("hello", "notes/hello.txt")
        mlflow.log_dict({"k": 1}, "config.json")
        mlflow.log_figure(figure, "plots/line.png")
        mlflow.log_image(np.zeros((4, 4, 3), dtype=np.uint8), "plots/image.png")
    run_id = run.info.run_id
    recorded = _recorded(store_dir, run_id)
    folder = _store(store_dir).artifact_dir(run_id)
    on_disk = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }
    assert recorded == on_disk
    assert set(recorded) == {
        "a.csv",
        "copy/a.csv",
        "copy/sub/b.txt",
        "notes/hello.txt",
        "config.json",
        "plots/line.png",
        "plots/image.png",
    }
    listed = [f.path for f in MlflowClient().list_artifacts(run_id)]
    assert listed == ["a.csv", "config.json", "copy", "notes", "plots"]
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="copy")
    assert (Path(local) / "sub" / "b.txt").read_text() == "b"
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/notes/hello.txt")
    assert text == "hello"


def test_no_artifact_path_leaves_the_run_folder(store_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    with mlflow.start_run() as run:
        with pytest.raises(MlflowException) as escaped:
            mlflow.log_artifact(str(tmp_path / "f.txt"), artifact_path="../../outside")
        assert escaped.value.error_code == "INVALID_PARAMETER_VALUE"
        with pytest.raises(MlflowException):
            mlflow.log_text("x", "/etc/passwd-copy")
    assert _recorded(store_dir, run.info.run_id) == {}
    assert not (tmp_path / "outside").exists()


class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n: int) -> None:
        self.n = n

    def predict(self, context, model_input, params=None):
        return model_input + self.n


def test_log_model_and_load_it_back(store_dir: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(
            name="adder", python_model=AddN(5), input_example=frame, registered_model_name="adder"
        )
    run_id = run.info.run_id
    recorded = _recorded(store_dir, run_id)
    assert "adder/MLmodel" in recorded and "adder/python_model.pkl" in recorded
    assert info.model_uri == f"models:/{info.model_id}"
    for uri in (f"runs:/{run_id}/adder", info.model_uri, "models:/adder/1", "models:/adder@latest"):
        assert list(mlflow.pyfunc.load_model(uri).predict(frame)["x"]) == [6.0, 7.0]
    model = MlflowClient().get_logged_model(info.model_id)
    assert (model.source_run_id, model.name, model.status.value) == (run_id, "adder", "READY")
    [output] = mlflow.get_run(run_id).outputs.model_outputs
    assert output.model_id == info.model_id
    assert [m.model_id for m in mlflow.search_logged_models(output_format="list")] == [
        info.model_id
    ]
    # nbtrack reads the same package, its files verified against the journal.
    with nbtrack.registry.queries.using_store(_store(store_dir)):
        version = nbtrack.registry.get_model_version("adder", 1)
    assert version.source == f"runs:/{run_id}/adder"


def test_logged_models_need_a_run(store_dir: Path) -> None:
    with pytest.raises(MlflowException) as outside:
        mlflow.pyfunc.log_model(name="loose", python_model=AddN(1))
    assert outside.value.error_code == "NOT_IMPLEMENTED"
    assert "Logged models outside a run" in outside.value.message


def test_what_the_store_does_not_hold_is_refused_clearly(store_dir: Path) -> None:
    client = MlflowClient()
    with pytest.raises(MlflowException) as traces:
        client.search_traces(locations=["0"])
    assert traces.value.error_code == "NOT_IMPLEMENTED"
    assert "Traces are not supported by nbtrack's MLflow plugin" in traces.value.message


def test_runs_mlflow_logged_show_in_nbtrack(store_dir: Path) -> None:
    with mlflow.start_run(run_name="shown") as run:
        mlflow.log_param("alpha", 0.1)
        for step in range(3):
            mlflow.log_metric("loss", 1.0 - step / 10, step=step)
    close_stores()
    nbtrack.set_tracking_uri(store_dir)
    found = nbtrack.search_runs(search_all_experiments=True)
    assert list(found["tags.mlflow.runName"]) == ["shown"]
    history = nbtrack.get_metric_history(run.info.run_id, "loss")
    assert list(history.values) == [1.0, 0.9, 0.8]


def test_panels_and_registry_show_what_mlflow_logged(store_dir: Path) -> None:
    from nbtrack.widgets.compare import CompareRuns
    from nbtrack.widgets.curves import MetricCurves
    from nbtrack.widgets.registry import RegistryPanel
    from nbtrack.widgets.table import RunTable

    names = []
    for depth in (3, 6):
        with mlflow.start_run(run_name=f"depth-{depth}") as run:
            mlflow.log_param("depth", depth)
            for step in range(4):
                mlflow.log_metric("val_loss", 1.0 / (step + depth), step=step)
            mlflow.pyfunc.log_model(name="model", python_model=AddN(depth))
        names.append(run.info.run_id)
    version = mlflow.register_model(f"runs:/{names[1]}/model", "adder")
    MlflowClient().set_registered_model_alias("adder", "champion", version.version)
    with pytest.warns(nbtrack.registry.MissingReasonWarning):
        MlflowClient().transition_model_version_stage("adder", version.version, "Staging")

    table = RunTable()
    assert sorted(row["cells"][0] for row in table.rows) == ["depth-3", "depth-6"]
    curves = MetricCurves(names)
    assert [(s["metric"], s["n"]) for s in curves.series] == [("val_loss", 4)] * 2
    compared = CompareRuns(names)
    assert [p["key"] for p in compared.params] == ["depth"]
    assert [m["key"] for m in compared.metrics] == ["val_loss"]
    panel = RegistryPanel("adder")
    [model] = panel.models
    assert "champion" in str(model) and "Staging" in str(model)
    [moved] = [e for e in panel.events if e.get("to") == "Staging"]
    assert moved["reason"] == "no reason given"
