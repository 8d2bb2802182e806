"""MLflow's own web UI over an nbtrack store: ``nbtrack ui`` starts MLflow's server on the
store, and headless Chromium (Playwright) opens what nbtrack logged there: the run's metric
chart, an artifact, the experiment's run list and the registered model with its version.

The store is written by nbtrack's own API in a separate process (a run with a metric over
20 steps, a text artifact, a scikit-learn model registered as a version). Every request the
pages make must succeed, except the one MLflow's UI makes on its own sqlite store too and
shrugs off (``users/current``, answered 404 without MLflow's auth app), and the server's
log must hold no error. Screenshots go to ``benchmarks/results/screenshots/mlflow-ui-*.png``
(gitignored). Skipped only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from plugin_fixtures import CLEARED
from server_helpers import call_json, free_port, wait_until_answering
from test_browser import CHROMIUM, SHOTS, kept_page

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing"),
    pytest.mark.slow,  # MLflow's server, a model logged and registered, Chromium
]

ROOT = Path(__file__).resolve().parents[1]
TOLERATED = {"/ajax-api/2.0/mlflow/users/current"}  # 404 on MLflow's sqlite store too
PRESIGNED_UNSUPPORTED = "Presigned download is not supported for the current artifact repository"
LOG_RUN = """
import sys
import numpy as np
from sklearn.linear_model import LinearRegression
import nbtrack
import nbtrack.sklearn

nbtrack.set_experiment("ui-demo")
with nbtrack.start_run(run_name="curve-run") as run:
    nbtrack.log_params({"lr": 0.1, "epochs": 20})
    for step in range(20):
        nbtrack.log_metric("loss", 1.0 / (step + 1), step=step)
    nbtrack.log_text("hello from nbtrack", "notes/hello.txt")
    X = np.arange(10.0).reshape(-1, 1)
    model = LinearRegression().fit(X, 2 * X[:, 0] + 1)
    nbtrack.sklearn.log_model(model, "model", registered_model_name="ui-model")
print(run.info.experiment_id, run.info.run_id)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A store with one run logged by nbtrack, and ``nbtrack ui`` serving it."""
    folder = tmp_path_factory.mktemp("mlflow-ui")
    env = {**_env(), "NBTRACK_DIR": str(folder / "store")}
    logged = subprocess.run(
        [sys.executable, "-c", LOG_RUN], cwd=folder, env=env, capture_output=True, text=True
    )
    assert logged.returncode == 0, logged.stderr
    experiment_id, run_id = logged.stdout.split()[-2:]
    port = free_port()
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "nbtrack", "ui", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/health", server, log_path)
        _search_runs(url, experiment_id)
        yield SimpleNamespace(
            url=url, log=log_path, experiment_id=experiment_id, run_id=run_id, folder=folder
        )
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        # nbtrack ui became MLflow's server: stopping it stopped the server and its workers.
        assert _listening(port) is False


def _search_runs(url: str, experiment_id: str) -> None:
    """One search before the page's burst of requests. MLflow 3.18's server imports its
    auth module on the first search, and an assistant request arriving meanwhile reads
    the half-imported module and fails with a 500 (a race in MLflow's server, whatever
    the store); once imported, it answers. The search also proves that the store answers
    MLflow's REST API directly."""
    status, answer = call_json(
        url, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]}
    )
    assert status == 200, answer
    assert len(answer["runs"]) == 1


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def _page(ui: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """A Chromium page kept to the server; requests that failed and left it are recorded."""
    with kept_page(ui.url, 1000) as kept:
        failed: list[tuple[int, str]] = []

        def record(response: Any) -> None:
            path, _, query = response.url[len(ui.url) :].partition("?")
            tolerated = path in TOLERATED or _presigned_probe(response.status, path, query)
            if response.status >= 400 and not tolerated:
                failed.append((response.status, path))

        kept.page.on("response", record)
        kept.failed = failed
        yield kept


def _presigned_probe(status: int, path: str, query: str) -> bool:
    """MLflow 3.18's UI asks for a presigned download URL first and falls back to the
    artifact itself; a store that signs no URLs (local files, on MLflow's own backends
    too) answers 501 to the ask."""
    return status == 501 and ("presigned-download-url" in path or "presigned=true" in query)


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"mlflow-ui-{name}.png"))


def test_mlflow_ui_shows_the_run_chart_artifact_and_registered_model(ui: SimpleNamespace) -> None:
    run_page = f"{ui.url}/#/experiments/{ui.experiment_id}/runs/{ui.run_id}"
    with _page(ui) as session:
        page = session.page
        page.goto(f"{run_page}/model-metrics")
        page.get_by_role("heading", name="curve-run").wait_for()
        page.get_by_text("loss", exact=True).first.wait_for()
        plot = page.locator(".js-plotly-plot").first
        plot.locator("svg, canvas").first.wait_for()
        assert plot.locator("svg, canvas").count() > 0
        assert "curve-run (loss)" in page.locator("body").inner_text()  # the chart's legend
        _shot(page, "run-metric-chart")

        page.goto(f"{run_page}/artifacts/notes/hello.txt")
        page.get_by_text("hello from nbtrack").wait_for()
        assert page.get_by_text("model", exact=True).count() > 0  # the model's folder
        _shot(page, "run-artifact")

        page.goto(f"{ui.url}/#/experiments/{ui.experiment_id}/runs")
        page.get_by_role("link", name="curve-run").first.wait_for()
        _shot(page, "experiment-runs")

        page.goto(f"{ui.url}/#/models/ui-model")
        page.get_by_role("heading", name="ui-model").wait_for()
        page.get_by_role("link", name="Version 1").wait_for()
        _shot(page, "registered-model")

        page.goto(f"{ui.url}/#/models/ui-model/versions/1")
        page.get_by_text("Source Run").first.wait_for()
        page.get_by_role("link", name="curve-run").first.wait_for()
        _shot(page, "model-version")
        page.wait_for_timeout(1000)  # requests the last page sent after it showed

    assert session.failed == []
    assert session.blocked == []
    assert session.errors == []
    # MLflow logs its answer to the presigned probe at ERROR (see _presigned_probe).
    lines = ui.log.read_text().splitlines(keepends=True)
    log = "".join(line for line in lines if PRESIGNED_UNSUPPORTED not in line)
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]
    assert f"running on {ui.url} " in log  # nbtrack ui: loopback unless told otherwise
