"""What MLflow's web UI asks its server, answered over an nbtrack store as over MLflow's sqlite
store: ``nbtrack ui`` and ``mlflow server --backend-store-uri sqlite:...`` side by side, each
on a store the same script filled, sent the requests the UI's pages send. (The pages
themselves are opened in test_browser_mlflow_ui.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlflow import MlflowClient

from nbtrack.mlflow_ui import server_command
from plugin_fixtures import CLEARED
from server_helpers import call_json, free_port, wait_until_answering

pytestmark = pytest.mark.slow  # two MLflow servers, models logged

ROOT = Path(__file__).resolve().parents[1]
FILL = """
import mlflow
import pandas as pd
from sklearn.linear_model import LinearRegression

mlflow.set_experiment("ui-calls")
frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]})
for name in ("first", "second"):
    with mlflow.start_run(run_name=name):
        mlflow.log_input(mlflow.data.from_pandas(frame, name="train"), context="training")
        mlflow.log_input(mlflow.data.from_pandas(frame.head(2), name="holdout"), context="eval")
        mlflow.sklearn.log_model(LinearRegression().fit(frame[["x"]], frame["y"]), name=name)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def _server(folder: Path, uri: str, command: list[str]) -> Iterator[SimpleNamespace]:
    folder.mkdir()
    env = {**_env(), "MLFLOW_TRACKING_URI": uri}
    filled = subprocess.run(
        [sys.executable, "-c", FILL], cwd=folder, env=env, capture_output=True, text=True
    )
    assert filled.returncode == 0, filled.stderr
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{command[command.index('--port') + 1]}"
    try:
        wait_until_answering(f"{url}/health", server, log_path)
        yield SimpleNamespace(url=url, log=log_path)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SimpleNamespace]]:
    root = tmp_path_factory.mktemp("ui-calls")
    sqlite_uri = f"sqlite:///{root}/sqlite/mlflow.db"
    sqlite_command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", sqlite_uri,
        "--host", "127.0.0.1", "--port", str(free_port()), "--workers", "1",
    ]  # fmt: skip
    store = root / "nbtrack" / "store"
    nbtrack_command = server_command(store, port=free_port())
    sqlite = _server(root / "sqlite", sqlite_uri, sqlite_command)
    nbtrack = _server(root / "nbtrack", f"nbtrack://{store}", nbtrack_command)
    try:
        yield {"sqlite": next(sqlite), "nbtrack": next(nbtrack)}
    finally:
        for generator in (sqlite, nbtrack):
            generator.close()


def _both(servers: dict[str, SimpleNamespace], path: str, body: Any = None) -> list[Any]:
    answers = []
    for side in ("sqlite", "nbtrack"):
        server = servers[side]
        _, experiment = call_json(
            server.url, "/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=ui-calls"
        )
        filled = json.loads(
            json.dumps(body).replace("EXPERIMENT", experiment["experiment"]["experiment_id"])
        )
        status, answer = call_json(server.url, path, filled)
        assert status == 200, (side, answer)
        answers.append(answer)
    return answers


def test_run_list_dataset_picker(servers: dict[str, SimpleNamespace]) -> None:
    """The run list's dataset picker: each dataset the experiment's runs took, once, with
    its context (MLflow's handler answered 500 when the store had no such call)."""
    sqlite, nbtrack = _both(
        servers,
        "/ajax-api/2.0/mlflow/experiments/search-datasets",
        {"experiment_ids": ["EXPERIMENT"]},
    )

    def summaries(answer: dict[str, Any]) -> list[tuple[str, str, str]]:
        return sorted((d["name"], d["digest"], d["context"]) for d in answer["dataset_summaries"])

    assert summaries(nbtrack) == summaries(sqlite)
    assert [s[::2] for s in summaries(nbtrack)] == [("holdout", "eval"), ("train", "training")]


def test_logged_models_in_the_order_the_ui_asks(servers: dict[str, SimpleNamespace]) -> None:
    """A run page lists its logged models newest first by ``creation_time`` (MLflow's alias
    of ``creation_timestamp``); nbtrack refused the alias before."""
    body = {
        "experiment_ids": ["EXPERIMENT"],
        "order_by": [{"field_name": "creation_time", "ascending": False}],
    }
    sqlite, nbtrack = _both(servers, "/ajax-api/2.0/mlflow/logged-models/search", body)
    names = [[m["info"]["name"] for m in answer["models"]] for answer in (sqlite, nbtrack)]
    assert names[1] == names[0] == ["second", "first"]


def test_trace_metrics_are_empty_rather_than_refused(servers: dict[str, SimpleNamespace]) -> None:
    """An experiment's first page charts its traces' metrics; failed requests kept the
    charts loading while the UI retried them. nbtrack holds no traces, so every chart is
    empty, as on a store without any."""
    body = {
        "experiment_ids": ["EXPERIMENT"],
        "view_type": "TRACES",
        "metric_name": "trace_count",
        "aggregations": [{"aggregation_type": "COUNT"}],
        "time_interval_seconds": 86400,
        "start_time_ms": 0,
        "end_time_ms": int(time.time() * 1000),
    }
    sqlite, nbtrack = _both(servers, "/ajax-api/3.0/mlflow/traces/metrics", body)
    assert nbtrack == sqlite == {}


def test_genai_pages_get_mlflow_not_supported(servers: dict[str, SimpleNamespace]) -> None:
    """The GenAI pages' calls: MLflow's NOT_IMPLEMENTED answer naming what nbtrack does not
    hold (a bare NotImplementedError made MLflow's server answer 500 with a traceback)."""
    url = servers["nbtrack"].url
    for path, what in [
        ("/ajax-api/3.0/mlflow/review-queues/list?experiment_id=1", "Review queues"),
        ("/ajax-api/3.0/mlflow/label-schemas/list?experiment_id=1", "Review queues"),
        ("/ajax-api/3.0/mlflow/gateway/endpoints/list", "AI Gateway endpoints"),
    ]:
        status, answer = call_json(url, path)
        assert status == 501, (path, answer)
        assert json.loads(answer)["error_code"] == "NOT_IMPLEMENTED"
        assert f"{what}" in json.loads(answer)["message"]


def test_registering_through_the_server_logs_no_error(servers: dict[str, SimpleNamespace]) -> None:
    """MLflow's server looks up webhooks after each registry change: an nbtrack store has
    none (the lookup failed, and the server logged a traceback)."""
    server = servers["nbtrack"]
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    [run] = client.search_runs(
        [client.get_experiment_by_name("ui-calls").experiment_id], "attributes.run_name = 'first'"
    )
    client.create_registered_model("served")
    version = client.create_model_version(
        "served", f"runs:/{run.info.run_id}/first", run.info.run_id
    )
    assert version.version == "1"
    assert client.get_registered_model("served").latest_versions[0].run_id == run.info.run_id
    log = server.log.read_text()
    assert "Failed to deliver webhook" not in log and "Traceback" not in log, log[-3000:]


def test_nbtrack_ui_serves_the_store_on_loopback_with_its_registry() -> None:
    command = server_command(Path("/data/store"), port=5123)
    options = dict(zip(command[4::2], command[5::2], strict=True))
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert options == {
        "--backend-store-uri": "nbtrack:///data/store",
        "--registry-store-uri": "nbtrack:///data/store",
        "--host": "127.0.0.1",
        "--port": "5123",
        "--workers": "1",
    }
