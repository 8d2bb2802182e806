"""The run session under the fluent API: one store per session, one way to end a run,
clients and panels that keep to their own store, and MLflow's API details that code in
the wild relies on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbtrack
from nbtrack import MlflowClient
from nbtrack.errors import RunStateError
from nbtrack.store import Store
from nbtrack.tracking import fluent
from nbtrack.tracking.session import Session

SYSTEM_TOTALS = {
    "system/wall_time_seconds",
    "system/cpu_time_seconds",
    "system/peak_memory_megabytes",
}


def test_a_client_with_its_own_uri_leaves_the_fluent_store_alone(tracking, tmp_path: Path):
    before = tracking.get_tracking_uri()
    other = tmp_path / "other"
    client = MlflowClient(tracking_uri=str(other))
    experiment_id = client.create_experiment("elsewhere")
    client_run = client.create_run(experiment_id)
    client.log_metric(client_run.info.run_id, "m", 1.0)
    with tracking.start_run() as fluent_run:
        tracking.log_metric("m", 2.0)

    assert tracking.get_tracking_uri() == before
    assert client.tracking_uri == other.resolve().as_uri()
    assert tracking.get_experiment_by_name("elsewhere") is None
    with Store(other) as store:
        assert [r["run_id"] for r in store.runs()] == [client_run.info.run_id]
    assert tracking.get_run(fluent_run.info.run_id).data.metrics == {"m": 2.0}


def test_a_client_made_without_a_uri_keeps_the_store_it_was_made_on(tracking, tmp_path):
    client = MlflowClient()
    first = tracking.get_tracking_uri()
    tracking.set_tracking_uri(tmp_path / "second")
    assert client.tracking_uri == first
    run = client.create_run("0")
    with pytest.raises(nbtrack.errors.NotFoundError):
        tracking.get_run(run.info.run_id)


def test_a_client_logging_to_the_active_run_goes_through_its_buffer(tracking):
    with tracking.start_run() as run:
        MlflowClient().log_metric(run.info.run_id, "loss", 0.5, step=3)
        assert run.writer.points[-4:-1] == ["loss", 0.5, 3]
    assert tracking.get_run(run.info.run_id).data.metrics == {"loss": 0.5}


def test_deleting_the_active_run_from_a_client_refuses_its_metrics(tracking):
    with tracking.start_run() as run:
        tracking.log_metric("before", 1.0)
        MlflowClient().delete_run(run.info.run_id)
        with pytest.raises(RunStateError, match="is deleted"):
            tracking.log_metric("after", 1.0)
        MlflowClient().restore_run(run.info.run_id)
        tracking.log_metric("after", 2.0)
    assert tracking.get_run(run.info.run_id).data.metrics == {"before": 1.0, "after": 2.0}


def test_sessions_are_independent(tmp_path: Path):
    one, two = Session(tmp_path / "one"), Session(tmp_path / "two")
    first = one.start_run(run_name="first")
    second = two.start_run(run_name="second")  # not nested: each session has its own stack
    assert one.active_run() is first and two.active_run() is second
    one.end(first, "FINISHED")
    two.end(second, "FAILED")
    assert first.store is not second.store
    assert first.snapshot().info.status == "FINISHED"
    assert second.snapshot().info.status == "FAILED"


def test_ending_a_run_ends_the_runs_above_it_once_with_the_end_hooks(tracking):
    ended: list[tuple[str, str]] = []
    session = fluent.default_session()
    session.run_end_hooks.append(lambda run_id, status: ended.append((run_id, status)))
    outer = tracking.start_run(run_name="outer")
    inner = tracking.start_run(run_name="inner", nested=True)
    session.end(outer, "KILLED")
    session.end(outer, "FINISHED")  # already ended: nothing happens
    assert ended == [(inner.run_id, "KILLED"), (outer.run_id, "KILLED")]
    assert tracking.active_run() is None
    assert tracking.get_run(inner.run_id).info.status == "KILLED"


def test_a_detached_run_is_open_but_not_active_and_ends_through_the_same_path(tracking):
    ended = []
    session = fluent.default_session()
    session.run_end_hooks.append(lambda run_id, status: ended.append(run_id))
    parent = session.start_run(run_name="parent")
    session.detach(parent)
    assert tracking.active_run() is None
    assert session.open_run(parent.run_id) is parent
    with tracking.start_run(parent_run_id=parent.run_id) as child:
        pass
    session.end(parent, "FINISHED")
    assert ended == [child.run_id, parent.run_id]
    assert session.open_run(parent.run_id) is None


def test_mlflow_entities_private_attributes_work(tracking):
    with tracking.start_run(run_name="private") as active:
        tracking.log_param("p", 1)
        assert active._info.run_id == active.info.run_id
        assert active._data.params == {"p": "1"}
    run = tracking.get_run(active.info.run_id)
    assert run._info.run_name == "private" and run._data.params == {"p": "1"}
    assert tracking.last_active_run()._info.run_id == active.info.run_id


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.log_metric("m", 1.0, stpe=2),
        lambda t: t.log_metrics({"m": 1.0}, steps=2),
        lambda t: t.log_param("p", 1, sync=True),
    ],
    ids=["log_metric", "log_metrics", "log_param"],
)
def test_misspelt_keyword_arguments_are_a_type_error(tracking, call):
    with tracking.start_run() as run, pytest.raises(TypeError, match="unexpected keyword"):
        call(tracking)
    assert tracking.get_run(run.info.run_id).data.metrics == {}


def test_mlflow_3_keyword_arguments_are_accepted(tracking):
    with tracking.start_run() as run:
        tracking.log_metric("m", 1.0, step=1, synchronous=True, model_id=None, dataset=None)
        tracking.log_metrics({"n": 2.0}, model_id=None, dataset=None)
    assert tracking.get_run(run.info.run_id).data.metrics == {"m": 1.0, "n": 2.0}


def test_start_run_log_system_metrics_records_them(tracking, monkeypatch):
    monkeypatch.setenv("NBTRACK_SYSTEM_SAMPLING_SECONDS", "0.05")
    with tracking.start_run(log_system_metrics=True) as measured:
        time.sleep(0.3)
    with tracking.start_run() as plain:
        pass
    metrics = tracking.get_run(measured.info.run_id).data.metrics
    assert set(metrics) >= SYSTEM_TOTALS
    assert metrics["system/wall_time_seconds"] >= 0.3
    samples = tracking.get_metric_history(measured.info.run_id, "system/process_memory_megabytes")
    assert len(samples) >= 2
    assert tracking.get_run(plain.info.run_id).data.metrics == {}


def test_enable_system_metrics_logging_applies_to_later_runs(tracking, monkeypatch):
    tracking.enable_system_metrics_logging()
    with tracking.start_run() as measured:
        pass
    with tracking.start_run(log_system_metrics=False) as declined:
        pass
    tracking.disable_system_metrics_logging()
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")  # MLflow's switch
    with tracking.start_run() as by_environment:
        pass
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING")
    assert set(tracking.get_run(measured.info.run_id).data.metrics) >= SYSTEM_TOTALS
    assert tracking.get_run(declined.info.run_id).data.metrics == {}
    assert tracking.get_run(by_environment.info.run_id).data.metrics == {}  # disabled wins
    fluent.default_session().log_system_metrics = None  # back to the environment
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    with tracking.start_run() as from_environment:
        pass
    assert set(tracking.get_run(from_environment.info.run_id).data.metrics) >= SYSTEM_TOTALS


def test_a_measured_run_stops_being_sampled_when_it_ends(tracking, monkeypatch):
    monkeypatch.setenv("NBTRACK_SYSTEM_SAMPLING_SECONDS", "0.05")
    with tracking.start_run(log_system_metrics=True) as run:
        time.sleep(0.2)
    key = "system/process_memory_megabytes"
    count = len(tracking.get_metric_history(run.info.run_id, key))
    time.sleep(0.3)
    tracking.flush()
    assert len(tracking.get_metric_history(run.info.run_id, key)) == count


def test_search_experiments_takes_mlflows_arguments(tracking):
    for name in ("alpha", "beta", "gamma"):
        tracking.create_experiment(name, tags={"team": "a" if name != "beta" else "b"})
    names = [e.name for e in tracking.search_experiments(order_by=["name ASC"])]
    assert names == ["Default", "alpha", "beta", "gamma"]
    found = tracking.search_experiments(filter_string="name LIKE '%a'", order_by=["name DESC"])
    assert [e.name for e in found] == ["gamma", "beta", "alpha"]
    assert [e.name for e in tracking.search_experiments(filter_string="tags.team = 'b'")] == [
        "beta"
    ]
    assert len(tracking.search_experiments(max_results=2)) == 2
    tracking.delete_experiment(tracking.get_experiment_by_name("beta").experiment_id)
    assert "beta" not in [e.name for e in tracking.search_experiments()]
    deleted = tracking.search_experiments(view_type=nbtrack.ViewType.DELETED_ONLY)
    assert [e.name for e in deleted] == ["beta"]


def test_client_searches_page_with_tokens(tracking):
    client = MlflowClient()
    for index in range(7):
        with tracking.start_run(run_name=f"run-{index}"):
            tracking.log_metric("index", index)
    seen, token, pages = [], None, 0
    while True:
        page = client.search_runs(
            ["0"], order_by=["metrics.index ASC"], max_results=3, page_token=token
        )
        seen += [r.info.run_name for r in page]
        pages += 1
        token = page.token
        if token is None:
            break
    assert seen == [f"run-{i}" for i in range(7)] and pages == 3
    for name in ("x", "y", "z"):
        client.create_experiment(name)
    first = client.search_experiments(max_results=2, order_by=["name ASC"])
    rest = client.search_experiments(max_results=2, order_by=["name ASC"], page_token=first.token)
    assert [e.name for e in first] == ["Default", "x"] and [e.name for e in rest] == ["y", "z"]
    assert rest.token is None
    with pytest.raises(nbtrack.errors.InvalidParameterError, match="page token"):
        client.search_runs(["0"], page_token="not-a-token")


def test_dir_lists_the_lazily_loaded_names():
    names = dir(nbtrack)
    for name in ("runs_table", "MlflowClient", "log_model", "autolog", "registry", "sklearn"):
        assert name in names
    assert set(nbtrack.__all__) <= set(names)


def test_python_dash_m_nbtrack_is_the_command(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(Path(nbtrack.__file__).parents[1])}
    for variable in ("NBTRACK_DIR", "NBTRACK_TRACKING_URI"):
        env.pop(variable, None)
    store = tmp_path / "store"
    with Session(store).start_run(run_name="from-a-session") as run:
        run.store.log_params(run.run_id, {"p": "1"})
    result = subprocess.run(
        [sys.executable, "-m", "nbtrack", "--store", str(store), "runs"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "from-a-session" in result.stdout


def test_a_clients_registry_calls_act_on_its_own_store(tracking, tmp_path):
    from nbtrack import registry

    other = MlflowClient(tracking_uri=str(tmp_path / "other"))
    other.create_registered_model("elsewhere")
    assert [m.name for m in other.search_registered_models()] == ["elsewhere"]
    assert registry.search_registered_models() == []  # the fluent API's store has none
    mine = MlflowClient()
    mine.create_registered_model("here")
    assert [m.name for m in other.search_registered_models()] == ["elsewhere"]
    page = mine.search_registered_models(max_results=1)
    assert [m.name for m in page] == ["here"] and page.token is None
