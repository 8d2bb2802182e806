"""Sync against the deployment teams run: an ``mlflow server`` whose backend is PostgreSQL
(a throwaway cluster started here), and one behind MLflow's basic-auth app."""

from __future__ import annotations

import math
import uuid

import pytest

import nbtrack
from nbtrack.errors import SyncError
from nbtrack.store import Store
from sync_helpers import (
    assert_run_equal,
    start_postgres,
    start_server,
    stop_postgres,
    stop_server,
    store_fingerprint,
)

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("psycopg2", reason="MLflow's PostgreSQL backend needs psycopg2")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cluster = start_postgres()
    try:
        started = start_server(tmp_path_factory.mktemp("pg-server"), backend=cluster.uri)
        yield started
        stop_server(started)
    finally:
        stop_postgres(cluster)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")


def test_push_then_pull_into_a_fresh_store_through_postgresql(tracking, server, tmp_path):
    client = mlflow.tracking.MlflowClient(tracking_uri=server.uri)
    tracking.set_experiment(experiment := f"pg-{uuid.uuid4().hex[:8]}")
    with tracking.start_run(run_name="parent") as parent:
        tracking.log_params({f"p{i}": i for i in range(30)})
        for step in range(200):
            tracking.log_metrics({"loss": 1 / (step + 1), "acc": step / 200}, step=step)
        for step, value in enumerate([math.nan, math.inf, -math.inf]):
            tracking.log_metric("odd", value, step=step)
        tracking.log_text("schema v2", "notes.txt")
        with tracking.start_run(run_name="child", nested=True) as child:
            tracking.log_metric("acc", 0.5)
    store = tracking.tracking.fluent.current_store()

    report = nbtrack.sync.push(server.uri, progress=False)
    assert report.created == 2
    for run in (parent, child):
        remote_id = store.get_run(run.info.run_id)["synced"][server.uri]
        assert_run_equal(client, store, run.info.run_id, remote_id)
    again = nbtrack.sync.push(server.uri, progress=False)
    assert (again.created, again.updated, again.values) == (0, 0, 0)

    fresh = Store(tmp_path / "fresh")
    pulled = nbtrack.sync.pull(server.uri, experiment, store=fresh, progress=False)
    assert pulled.created == 2
    for row in fresh.runs():
        assert row["remote"]["server"] == server.uri
        assert_run_equal(client, fresh, row["run_id"], row["run_id"])
    assert nbtrack.sync.pull(server.uri, experiment, store=fresh, progress=False).unchanged == 2
    fresh.close()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-server")
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root}/basic_auth.db\n"
        "admin_username = admin\nadmin_password = team-admin-pw-7\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only"}
    started = start_server(root, app="basic-auth", env=env)
    yield started
    stop_server(started)


def test_wrong_credentials_are_a_clear_error_and_nothing_is_written(
    tracking, auth_server, monkeypatch, capsys
):
    with tracking.start_run():
        tracking.log_metric("a", 1.0)
    store = tracking.tracking.fluent.current_store()
    store.flush()
    before = store_fingerprint(store.root)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    with pytest.raises(SyncError, match="refused the credentials") as failed:
        nbtrack.sync.push(auth_server.uri, progress=False)
    assert auth_server.uri in str(failed.value)
    assert "MLFLOW_TRACKING_PASSWORD" in str(failed.value)
    assert "not-the-password" not in str(failed.value) + capsys.readouterr().err
    assert store_fingerprint(store.root) == before

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "team-admin-pw-7")
    report = nbtrack.sync.push(auth_server.uri, progress=False)
    assert report.created == 1
    for path in store.root.rglob("*"):
        if path.is_file():
            assert b"team-admin-pw-7" not in path.read_bytes(), path
