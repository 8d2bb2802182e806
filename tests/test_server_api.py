"""The server extension's REST API (nbtrack.server) in a real ``jupyter server``: every
route needs Jupyter's authentication (and writes its XSRF token), a bad filter is a 400
with its message and token, no artifact path leaves its run, page tokens walk 10,000 runs,
the change feed reports a run another process logs, registry moves go through the
model's policy, and the panels answer intents. The store is written by this process
through nbtrack's API, as a kernel would."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import nbtrack
from model_helpers import register
from nbtrack.capture.redact import redact_source
from nbtrack.store.records import cell_record
from nbtrack.tracking import fluent
from nbtrack.tracking.session import Session, close_stores
from server_helpers import ROOT, jupyter

# A real jupyter server for the module: slow to start (make test runs it; test-fast does not).
pytestmark = pytest.mark.slow

CELL = "%%track --name cell-run\nlr = 0.1\napi_key = 'sk-abcdefghijklmnopqrstuvwxyz123456'"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A store with a few runs in the server's root, and the server over it."""
    root = tmp_path_factory.mktemp("root")
    home = tmp_path_factory.mktemp("home")
    session = Session(root / ".nbtrack")
    with fluent.use_session(session):
        nbtrack.set_experiment("small")
        ids = []
        for i in range(3):
            with nbtrack.start_run(run_name=f"small-{i}") as run:
                nbtrack.log_param("lr", str(0.1 * (i + 1)))
                for step in range(5000):
                    nbtrack.log_metric("loss", 1 / (step + 1) + i, step=step)
                nbtrack.log_text("hello", "notes/a.txt")
                nbtrack.log_text("<script>alert(1)</script>", "report.html")
                ids.append(run.run_id)
        store = session.store
        source = redact_source(CELL.split("\n", 1)[1])  # as the magic records a cell
        assert "sk-" not in source
        store.append(ids[0], [cell_record(source, 3, "cell-1", str(root / "nb.ipynb"))])
        outside = root.parent / f"{root.name}-secret.txt"
        outside.write_text("not yours")
        (store.artifact_dir(ids[1]) / "escape.txt").symlink_to(outside)
        nbtrack.flush()
    with jupyter(root, home) as served:
        yield SimpleNamespace(**vars(served), session=session, ids=ids)
    session.close()
    close_stores()


def call(server: Any, path: str, method: str = "GET", body: Any = None, token: bool = True):
    """(status, headers, parsed JSON or bytes) of a request to the API."""
    url = f"{server.url}/nbtrack/api/{path}"
    headers = {"Authorization": f"token {server.token}"} if token else {}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, head, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, head, raw = error.code, error.headers, error.read()
    kind = head.get("Content-Type", "")
    return status, head, json.loads(raw) if kind.startswith("application/json") else raw


ROUTES = [
    ("GET", "store"),
    ("GET", "experiments"),
    ("GET", "runs"),
    ("GET", "runs/{run}"),
    ("GET", "runs/{run}/metrics/loss"),
    ("GET", "runs/{run}/artifacts/notes/a.txt"),
    ("POST", "runs/{run}/cell"),
    ("GET", "kernels/abc/run"),
    ("GET", "registry/models"),
    ("GET", "registry/models/m"),
    ("POST", "registry/models/m/versions/1/check"),
    ("POST", "registry/models/m/versions/1/stage"),
    ("POST", "registry/models/m/versions/1/alias"),
    ("GET", "changes?timeout=0"),
    ("GET", "panels?client=c&timeout=0"),
    ("POST", "panels"),
    ("POST", "panels/" + "0" * 32),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_request_without_authentication(server, method, path):
    status, _, body = call(server, path.format(run=server.ids[0]), method, {}, token=False)
    assert status == 403, body
    assert status == call(server, "experiments", token=False)[0]


def test_writes_with_the_login_cookie_need_the_xsrf_token(server):
    """A page's session (cookie) may read, but posts only with the XSRF token Jupyter
    gave it: another site's form cannot move a model or drive a panel."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{server.url}/login?token={server.token}").read()  # cookies: login, _xsrf
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    url = f"{server.url}/nbtrack/api/runs/{server.ids[0]}/cell"
    body = json.dumps({"source": CELL}).encode()
    with opener.open(f"{server.url}/nbtrack/api/experiments") as response:
        assert response.status == 200  # reading with the cookie alone
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(urllib.request.Request(url, data=body, method="POST"))
    assert refused.value.code == 403
    allowed = urllib.request.Request(url, data=body, method="POST", headers={"X-XSRFToken": xsrf})
    with opener.open(allowed) as response:
        assert json.loads(response.read())["matches"] is True


def test_experiments_and_runs_answer_as_mlflow_shapes_them(server):
    status, _, body = call(server, "experiments")
    assert status == 200
    small = next(e for e in body["experiments"] if e["name"] == "small")
    assert small["runs"] == 3 and small["running"] == 0
    query = urllib.parse.urlencode(
        {
            "experiment_ids": small["experiment_id"],
            "filter": "params.lr = '0.2'",
            "order_by": "metrics.loss DESC",
        }
    )
    status, _, body = call(server, f"runs?{query}")
    assert status == 200 and body["total"] == 1 and body["next_page_token"] is None
    (run,) = body["runs"]
    assert run["info"]["run_name"] == "small-1"
    assert run["data"]["params"] == {"lr": "0.2"}
    assert run["data"]["metrics"]["loss"] == pytest.approx(1 / 5000 + 1)


def test_a_bad_filter_is_a_400_with_its_message_and_token(server):
    query = urllib.parse.urlencode({"filter": "metrics.loss < 0.5 and params.lr ==== 1"})
    status, _, body = call(server, f"runs?{query}")
    assert status == 400
    assert body["message"].startswith("Invalid filter")
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    start, end = body["span"]
    assert body["text"][start:end].startswith("=")
    status, _, body = call(server, "runs?order_by=metrics.loss%20SIDEWAYS")
    assert status == 400 and "SIDEWAYS" in body["message"]
    status, _, body = call(server, "runs?view=archived")
    assert status == 400 and "view='archived'" in body["message"]


def test_one_run_holds_its_cell_provenance_and_artifacts(server):
    status, _, body = call(server, f"runs/{server.ids[0]}")
    assert status == 200
    assert body["run"]["info"]["run_name"] == "small-0"
    assert [a["path"] for a in body["artifacts"]] == ["notes/a.txt", "report.html"]
    assert body["cell"]["notebook"] == "nb.ipynb"  # relative to the server's root
    assert body["cell"]["cell_id"] == "cell-1"
    assert any(title.startswith("cell") for title, _ in body["sections"])
    assert call(server, "runs/" + "f" * 32)[0] == 404


def test_a_cell_matches_its_run_while_its_text_is_unchanged(server):
    run = server.ids[0]
    same = call(server, f"runs/{run}/cell", "POST", {"source": CELL})[2]
    assert same == {"recorded": True, "matches": True}  # secret redacted on both sides
    edited = call(server, f"runs/{run}/cell", "POST", {"source": CELL + "\nlr = 0.2"})[2]
    assert edited == {"recorded": True, "matches": False}
    none = call(server, f"runs/{server.ids[1]}/cell", "POST", {"source": CELL})[2]
    assert none == {"recorded": False, "matches": False}
    assert call(server, f"runs/{run}/cell", "POST", {"text": 1})[0] == 400


def test_metric_history_is_downsampled_as_the_panels_do(server):
    status, _, body = call(server, f"runs/{server.ids[0]}/metrics/loss?max_points=100")
    assert status == 200
    assert body["points"] == 5000
    assert len(body["steps"]) <= 100 and body["steps"][0] == 0 and body["steps"][-1] == 4999
    assert max(body["values"]) == pytest.approx(1.0)  # min/max buckets keep the spike
    assert call(server, f"runs/{server.ids[0]}/metrics/nope")[0] == 404


def test_artifacts_come_with_their_type_and_never_run_as_pages(server):
    run = server.ids[0]
    status, head, body = call(server, f"runs/{run}/artifacts/notes/a.txt")
    assert (status, body) == (200, b"hello")
    assert head["Content-Type"] == "text/plain; charset=utf-8"
    status, head, body = call(server, f"runs/{run}/artifacts/report.html")
    assert status == 200 and head["Content-Type"].startswith("text/html")
    assert head["Content-Security-Policy"].startswith("sandbox")  # no scripts, own origin
    assert head["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    ["..%2F..%2Fjournal.jsonl", "notes%2F..%2F..%2Fjournal.jsonl", "%2Fetc%2Fpasswd", "escape.txt"],
)
def test_an_artifact_path_that_leaves_its_run_is_refused(server, path):
    run = server.ids[1]  # escape.txt: a symlink from its artifacts to a file outside
    status, _, body = call(server, f"runs/{run}/artifacts/{path}")
    assert status == 400, body
    assert "not allowed" in body["message"] or "outside" in body["message"]


def test_a_raw_dotted_path_reaches_no_file_outside_the_run(server):
    """Sent as is (a browser or curl would fold the dots first)."""
    host = server.url.removeprefix("http://")
    connection = http.client.HTTPConnection(host, timeout=30)
    path = f"/nbtrack/api/runs/{server.ids[0]}/artifacts/../journal.jsonl"
    connection.request("GET", path, headers={"Authorization": f"token {server.token}"})
    response = connection.getresponse()
    assert response.status in (400, 404)
    assert b'"op"' not in response.read()


@pytest.mark.slow
def test_page_tokens_walk_ten_thousand_runs(server):
    bulk = _bulk_experiment(server)
    seen: list[str] = []
    token, pages = None, 0
    while True:
        query = {"experiment_ids": bulk, "max_results": 1000, "order_by": "metrics.m ASC"}
        if token:
            query["page_token"] = token
        status, _, body = call(server, "runs?" + urllib.parse.urlencode(query))
        assert status == 200 and body["total"] == 10_000
        seen += [r["info"]["run_id"] for r in body["runs"]]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            break
    assert pages == 10 and len(set(seen)) == 10_000
    query = urllib.parse.urlencode(
        {"experiment_ids": bulk, "max_results": 50_000, "order_by": "metrics.m ASC"}
    )
    whole = call(server, f"runs?{query}")[2]
    assert [r["info"]["run_id"] for r in whole["runs"]] == seen
    values = [r["data"]["metrics"]["m"] for r in whole["runs"]]
    assert values == sorted(values)
    assert call(server, "runs?page_token=bm9wZQ%3D%3D")[0] == 400


def _bulk_experiment(server: Any) -> str:
    with fluent.use_session(server.session):
        nbtrack.set_experiment("bulk")
        for i in range(10_000):
            with nbtrack.start_run(run_name=f"bulk-{i}"):
                nbtrack.log_metric("m", (i * 7919) % 10_007)
        nbtrack.flush()
        return nbtrack.get_experiment_by_name("bulk").experiment_id


LOG_A_RUN = """
import sys, nbtrack
nbtrack.set_tracking_uri(sys.argv[1])
nbtrack.set_experiment("from-elsewhere")
with nbtrack.start_run(run_name="elsewhere") as run:
    nbtrack.log_metric("acc", 0.9)
print(run.run_id)
"""


def test_the_change_feed_reports_a_run_another_process_logs(server):
    seq = call(server, "changes")[2]["seq"]  # after=-1: the current number, at once
    answers: list[dict[str, Any]] = []
    waiting = threading.Thread(
        target=lambda: answers.append(call(server, f"changes?after={seq}&timeout=50")[2])
    )
    waiting.start()
    time.sleep(0.5)
    child = subprocess.run(
        [sys.executable, "-c", LOG_A_RUN, str(server.root / ".nbtrack")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert child.returncode == 0, child.stderr
    run_id = child.stdout.strip()
    waiting.join(60)
    deadline = time.monotonic() + 30
    (answer,) = answers
    while run_id not in answer["added"] + answer["changed"] and time.monotonic() < deadline:
        answer = call(server, f"changes?after={seq}&timeout=5")[2]  # feed events merged
    assert run_id in answer["added"] + answer["changed"]
    assert answer["experiments"] is True  # "from-elsewhere" is new
    assert answer["seq"] > seq
    body = call(server, f"runs/{run_id}")[2]
    assert body["run"]["info"]["status"] == "FINISHED"


def test_registry_moves_go_through_the_models_policy(server):
    from nbtrack import registry

    with fluent.use_session(server.session):
        nbtrack.set_experiment("models")
        register(nbtrack, "notes-model", auc=0.8)
        registry.set_policy("notes-model", production=["metrics.val_auc >= 0.9"])
        nbtrack.flush()
    status, _, body = call(server, "registry/models")
    assert "notes-model" in [m["name"] for m in body["models"]]
    path = "registry/models/notes-model/versions/1"
    checks = call(server, f"{path}/check", "POST", {"stage": "Production"})[2]["checks"]
    assert [c["passed"] for c in checks] == [False]
    status, _, body = call(server, f"{path}/stage", "POST", {"stage": "Production", "reason": "go"})
    assert status == 409 and body["checks"][0]["passed"] is False
    assert call(server, f"{path}/stage", "POST", {"stage": "Production"})[0] == 400  # no reason
    status, _, body = call(
        server, f"{path}/stage", "POST", {"stage": "Staging", "reason": "try it out"}
    )
    assert status == 200 and body["version"]["current_stage"] == "Staging"
    events = call(server, "registry/models/notes-model")[2]["events"]
    assert events[-1]["to"] == "Staging" and events[-1]["reason"] == "try it out"


def test_a_panel_answers_the_pages_intents(server):
    client = "test-client"
    status, _, body = call(
        server, "panels", "POST", {"client": client, "kind": "table", "args": {"filter": ""}}
    )
    assert status == 200
    model = body["model_id"]
    opened = call(server, f"panels?client={client}&after=0&timeout=5")[2]
    state = opened["messages"][0]["data"]["state"]
    assert state["_anywidget_id"] == "nbtrack.widgets.table.RunTable"
    assert "_esm" not in state and "_module" not in state  # the page has its own copy
    assert all("code" not in m["data"].get("state", {}) for m in opened["messages"])
    intent = {"method": "custom", "content": {"kind": "filter", "text": "params.lr >"}}
    assert call(server, f"panels/{model}", "POST", {"client": client, "data": intent})[0] == 200
    after = opened["seq"]
    update = call(server, f"panels?client={client}&after={after}&timeout=5")[2]
    changed = update["messages"][-1]["data"]["state"]
    assert changed["filter_error"]["text"] == "params.lr >"
    assert call(server, f"panels/{model}", "POST", {"client": "other", "data": intent})[0] == 404
    assert call(server, "panels", "POST", {"client": client, "kind": "shell"})[0] == 400
    assert call(server, "panels", "POST", {"client": "../x", "kind": "table"})[0] == 400
