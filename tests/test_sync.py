"""Sync against a real ``mlflow server`` (sqlite backend, artifacts proxied to a folder):
push, pull, incremental and resumed pushes, conflicts, background sync, the CLI and the
magic; everything compared through MLflow's own MlflowClient."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import nbtrack
from model_helpers import iris, logged_run
from nbtrack import registry
from nbtrack.errors import RunStateError, SyncError
from nbtrack.store import Store
from nbtrack.store.records import cell_record
from nbtrack.tracking.session import close_stores
from sync_helpers import (
    Proxy,
    assert_run_equal,
    self_signed_certificate,
    start_server,
    stop_server,
    store_fingerprint,
)

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = start_server(tmp_path_factory.mktemp("mlflow-server"))
    yield started
    stop_server(started)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    # MLflow's client retries 429/5xx with backoff; a test needs no 4-minute patience.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    monkeypatch.setenv("NBTRACK_USER", "alice")


@pytest.fixture
def client(server):
    return mlflow.tracking.MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def populate(nb, experiment: str, model: str | None = None) -> dict[str, str]:
    """A store with what push must carry: params, NaN/inf histories, provenance and stale
    tags, a nested run, a failed and a deleted run, inputs, artifacts, a model package,
    and (with ``model``) a registry with stages, an alias, a rollback and its audit."""
    nb.set_experiment(experiment)
    store = nb.tracking.fluent.current_store()
    with nb.start_run(run_name="parent") as parent:
        nb.log_params({"lr": 0.1, "depth": 6, "optimizer": "adam"})
        for step in range(120):
            nb.log_metric("loss", 1 / (step + 1), step=step)
        for step, value in enumerate([math.nan, math.inf, -math.inf, 0.5]):
            nb.log_metric("odd", value, step=step)
        nb.set_tags({"team": "churn", "nbtrack.stale": "re-executed after use: cell 3"})
        nb.log_dict({"features": ["a", "b"]}, "config/features.json")
        nb.log_text("hello team", "notes.txt")
        nb.log_input(nb.data.from_pandas(iris()[0], name="iris"), context="training")
        store.append(parent.info.run_id, [cell_record("x = 1", 4, "cell-abc", "nb.ipynb")])
        with nb.start_run(run_name="child", nested=True) as child:
            nb.log_metric("acc", 0.75, step=0)
    with pytest.raises(ZeroDivisionError), nb.start_run(run_name="broken") as broken:
        nb.log_param("p", 1)
        1 / 0  # noqa: B018
    store.set_fields(broken.info.run_id, error="ZeroDivisionError: division by zero")  # as %%track
    with nb.start_run(run_name="gone") as gone:
        nb.log_metric("x", 1.0)
    nb.delete_run(gone.info.run_id)
    runs = {"parent": parent.info.run_id, "child": child.info.run_id}
    if model:
        first = logged_run(nb, 0.8)
        second = logged_run(nb, 0.9)
        nb.register_model(f"runs:/{first}/model", model)
        nb.register_model(f"runs:/{second}/model", model)
        registry.promote(model, 1, "Production", reason="beats the heuristic")
        registry.promote(model, 2, "Production", reason="better auc", archive_existing=True)
        registry.set_alias(model, "champion", 2, reason="wins the A/B test")
        registry.rollback(model, reason="v2 mis-scores new customers")
        runs.update(first=first, second=second)
    return runs


def local_runs(store: Store) -> list[dict]:
    return [r for r in store.runs() if not r.get("remote")]


def assert_server_equals_store(client, store: Store, server_uri: str) -> None:
    name = server_uri.rstrip("/")
    for row in local_runs(store):
        remote_id = row.get("synced", {}).get(name)
        if remote_id is None:
            assert row["lifecycle_stage"] == "deleted"  # never pushed: nothing to delete
            continue
        assert_run_equal(client, store, row["run_id"], remote_id)


def test_push_carries_everything_and_a_second_push_changes_nothing(tracking, server, client):
    experiment, model = unique("exp"), unique("churn")
    runs = populate(tracking, experiment, model)
    store = tracking.tracking.fluent.current_store()

    report = nbtrack.sync.push(server.uri, progress=False)

    assert report.created == 5 and report.conflicts == []  # "gone" was never pushed
    assert_server_equals_store(client, store, server.uri)
    remote = {r["run_name"]: r["synced"][server.uri] for r in local_runs(store) if r.get("synced")}
    child = client.get_run(remote["child"])
    assert child.data.tags["mlflow.parentRunId"] == remote["parent"]  # the server's id
    parent = client.get_run(remote["parent"])
    assert parent.data.tags["nbtrack.local_run_id"] == runs["parent"]  # one to one
    assert parent.data.tags["nbtrack.stale"].startswith("re-executed")
    assert json.loads(parent.data.tags["nbtrack.cell"])["cell_id"] == "cell-abc"
    assert client.get_run(remote["broken"]).info.status == "FAILED"
    assert "ZeroDivisionError" in client.get_run(remote["broken"]).data.tags["nbtrack.error"]
    assert "gone" not in remote  # deleted before it was ever pushed
    # The registry: versions, stages after the rollback, the alias, the audit trail.
    versions = {v.version: v for v in client.search_model_versions(f"name = '{model}'")}
    assert {v.current_stage for v in versions.values()} == {"Production", "Archived"}
    by_local = {v.tags["nbtrack.version"]: v for v in versions.values()}
    first = store.get_run(runs["first"])["synced"][server.uri]
    assert by_local["1"].current_stage == "Production" and by_local["1"].run_id == first
    assert client.get_model_version_by_alias(model, "champion").version == by_local["1"].version
    audit = " ".join(v for mv in versions.values() for k, v in mv.tags.items()
                     if k.startswith("nbtrack.audit."))  # fmt: skip
    for text in (
        "alice",
        "beats the heuristic",
        "wins the A/B test",
        "mis-scores",
        "-> Production",
    ):
        assert text in audit
    assert '"metrics": {"val_auc": 0.9}' in audit  # the evidence

    again = nbtrack.sync.push(server.uri, progress=False)
    assert (again.created, again.updated, again.values, again.artifacts) == (0, 0, 0, 0)
    assert again.registry_events == 0
    assert again.requests <= 2  # the version check and a login check, nothing per run
    assert_server_equals_store(client, store, server.uri)


def test_push_is_incremental_and_merges_a_tag_changed_on_both_sides(tracking, server, client):
    tracking.set_experiment(unique("inc"))
    with tracking.start_run(run_name="r") as run:
        tracking.log_metric("loss", 1.0, step=0)
        tracking.set_tags({"owner": "alice", "note": "first"})
    nbtrack.sync.push(server.uri, progress=False)
    store = tracking.tracking.fluent.current_store()
    remote_id = store.get_run(run.info.run_id)["synced"][server.uri]
    client.set_tag(remote_id, "owner", "bob")  # a teammate, on the server
    client.set_tag(remote_id, "reviewed", "yes")  # only there
    store.set_tags(run.info.run_id, {"owner": "carol"})  # and here
    for step in range(1, 5):
        store.log_points(run.info.run_id, ["loss", 1.0 / (step + 1), step, time.time() * 1000])

    report = nbtrack.sync.push(server.uri, progress=False)

    assert (report.created, report.updated) == (0, 1)
    assert report.values == 4 + 1  # the new points and the changed tag: nothing resent
    assert client.get_run(remote_id).data.tags["owner"] == "carol"  # this store's run wins
    assert store.get_run(run.info.run_id)["tags"]["reviewed"] == "yes"  # theirs comes here
    lost = report.conflicts[0]
    assert (lost["field"], lost["kept"], lost["lost"], lost["lost_side"]) == (
        "tags.owner", "carol", "bob", "server")  # fmt: skip
    text = str(nbtrack.sync.status(server.uri))
    assert "kept 'carol', lost 'bob'" in text and "waiting to push: 0 runs" in text
    assert_run_equal(client, store, run.info.run_id, remote_id)
    assert nbtrack.sync.push(server.uri, progress=False).values == 0


def test_pull_into_a_fresh_store_then_incrementally(tracking, server, client, tmp_path):
    experiment = unique("team")
    exp_id = client.create_experiment(experiment)
    teammate = client.create_run(exp_id, run_name="bobs-run", tags={"mlflow.user": "bob"})
    rid = teammate.info.run_id
    client.log_batch(rid, params=[mlflow.entities.Param("lr", "0.2")])
    for step in range(30):
        client.log_metric(rid, "loss", 1 / (step + 1), step=step, timestamp=1000 + step)
    client.log_metric(rid, "odd", math.inf, step=0, timestamp=5)
    client.log_text(rid, "bob's notes", "notes/readme.txt")
    client.set_terminated(rid, "FINISHED")

    report = nbtrack.sync.pull(server.uri, experiment, progress=False)

    store = tracking.tracking.fluent.current_store()
    assert report.created == 1
    row = store.get_run(rid)  # the same id
    assert row["remote"]["server"] == server.uri and row["status"] == "FINISHED"
    assert store.metric_history(rid, "odd")[1].tolist() == [math.inf]
    assert not (store.artifact_dir(rid) / "notes").exists()  # not fetched yet
    assert_run_equal(client, store, rid, rid)  # lists the artifacts: fetched on first open
    assert (store.artifact_dir(rid) / "notes/readme.txt").read_text() == "bob's notes"
    with pytest.raises(RunStateError, match="read-only"):
        store.set_tags(rid, {"a": "b"})
    with pytest.raises(RunStateError, match="read-only"):
        tracking.start_run(run_id=rid)

    assert nbtrack.sync.pull(server.uri, experiment, progress=False).unchanged == 1
    client.log_metric(rid, "loss", 0.01, step=30, timestamp=2000)
    client.set_tag(rid, "verdict", "ship it")
    again = nbtrack.sync.pull(server.uri, experiment, progress=False)
    assert (again.created, again.updated) == (0, 1)
    assert store.get_run(rid)["tags"]["verdict"] == "ship it"
    assert_run_equal(client, store, rid, rid)


def test_pulled_runs_show_in_the_run_table_beside_local_ones(tracking, server, client):
    experiment = unique("table")
    tracking.set_experiment(experiment)
    with tracking.start_run(run_name="mine"):
        tracking.log_metric("acc", 0.9)
    exp_id = client.create_experiment(experiment + "-remote")
    theirs = client.create_run(exp_id, run_name="theirs")
    client.log_metric(theirs.info.run_id, "acc", 0.8)
    client.set_terminated(theirs.info.run_id)
    nbtrack.sync.push(server.uri, experiment, progress=False)
    nbtrack.sync.pull(server.uri, [experiment, experiment + "-remote"], progress=False)

    from nbtrack.render import runs_table_text

    rows = tracking.tracking.fluent.search_rows(search_all_experiments=True)
    text = runs_table_text(rows)
    assert "mine" in text and "theirs" in text


def test_a_killed_push_resumes_with_no_duplicate_and_no_gap(tracking, server, client, tmp_path):
    tracking.set_experiment(experiment := unique("kill"))
    for n in range(12):
        with tracking.start_run(run_name=f"r{n}"):
            tracking.log_params({f"p{i}": i for i in range(20)})
            for step in range(300):
                tracking.log_metrics({f"m{k}": step * k for k in range(5)}, step=step)
            tracking.log_text("x" * 1000, f"a{n}.txt")
    store = tracking.tracking.fluent.current_store()
    store.flush()
    script = (
        "import sys, nbtrack.sync\nfrom nbtrack.store import Store\n"
        "nbtrack.sync.push(sys.argv[1], store=Store(sys.argv[2]), progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    rng = random.Random(13)
    for _ in range(10):
        process = subprocess.Popen(
            [sys.executable, "-c", script, server.uri, str(store.root)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(2.0, 6.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
    close_stores()
    store = Store(store.root)  # what the killed pushes left
    report = nbtrack.sync.push(server.uri, store=store, progress=False)

    assert report.created + report.updated + report.unchanged == 12
    exp = client.get_experiment_by_name(experiment)
    remote = client.search_runs([exp.experiment_id], max_results=100)
    assert len(remote) == 12  # no run twice
    assert len({r.data.tags["nbtrack.local_run_id"] for r in remote}) == 12
    assert_server_equals_store(client, store, server.uri)  # every point: no gap
    store.close()


def test_500s_are_retried_and_a_server_that_keeps_failing_is_a_clear_error(
    tracking, server, client
):
    tracking.set_experiment(unique("flaky"))
    with tracking.start_run(run_name="r") as run:
        for step in range(50):
            tracking.log_metric("loss", step, step=step)
    store = tracking.tracking.fluent.current_store()
    store.flush()
    flaky = Proxy(server.uri, lambda method, path, n: (500, b"boom") if n % 3 == 0 else None)
    try:
        report = nbtrack.sync.push(flaky.uri, progress=False)
    finally:
        flaky.close()
    assert flaky.injected > 0 and report.created == 1
    remote_id = store.get_run(run.info.run_id)["synced"][flaky.uri]
    assert_run_equal(client, store, run.info.run_id, remote_id)

    with tracking.start_run(run_name="second"):
        tracking.log_metric("loss", 1.0)
    store.flush()
    before = store_fingerprint(store.root)
    broken = Proxy(server.uri, lambda method, path, n: (500, b"down") if n > 2 else None)
    try:
        with pytest.raises(SyncError, match="keeps failing") as failed:
            nbtrack.sync.push(broken.uri, progress=False)
    finally:
        broken.close()
    assert broken.uri in str(failed.value) and "resumes" in str(failed.value)
    assert store_fingerprint(store.root) == before


def test_a_server_behind_tls_is_trusted_through_mlflows_variables(
    tracking, server, client, tmp_path, monkeypatch
):
    tracking.set_experiment(unique("tls"))
    with tracking.start_run(run_name="over-tls") as run:
        tracking.log_param("depth", 3)
        for step in range(20):
            tracking.log_metric("loss", 1 / (step + 1), step=step)
        tracking.log_text("hello", "notes/hello.txt")
    store = tracking.tracking.fluent.current_store()
    store.flush()
    certificate, key = self_signed_certificate(tmp_path)
    tls = Proxy(server.uri, tls=(certificate, key))
    try:
        before = store_fingerprint(store.root)
        with pytest.raises(SyncError, match="TLS certificate this machine does not trust") as e:
            nbtrack.sync.push(tls.uri, progress=False)
        assert tls.uri in str(e.value) and "MLFLOW_TRACKING_SERVER_CERT_PATH" in str(e.value)
        assert store_fingerprint(store.root) == before

        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certificate))
        report = nbtrack.sync.push(tls.uri, progress=False)
        assert report.created == 1 and report.artifacts == 1 and tls.requests >= 6
        remote_id = store.get_run(run.info.run_id)["synced"][tls.uri]
        assert_run_equal(client, store, run.info.run_id, remote_id)

        monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
        monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
        with tracking.start_run(run_name="insecure"):
            tracking.log_metric("loss", 0.5)
        store.flush()
        assert nbtrack.sync.push(tls.uri, progress=False).created == 1
    finally:
        tls.close()


def test_a_token_goes_with_every_request_and_is_never_stored(tracking, server, monkeypatch):
    tracking.set_experiment(unique("token"))
    with tracking.start_run(run_name="with-token"):
        tracking.log_metric("loss", 0.5)
        tracking.log_text("hello", "hello.txt")
    store = tracking.tracking.fluent.current_store()
    store.flush()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-s3cret")
    counted = Proxy(server.uri)
    try:
        report = nbtrack.sync.push(counted.uri, progress=False)
    finally:
        counted.close()
    assert report.created == 1 and len(counted.authorizations) >= 6
    assert set(counted.authorizations) == {"Bearer tok-s3cret"}
    for path in store.root.rglob("*"):
        if path.is_file():
            assert b"tok-s3cret" not in path.read_bytes(), path


def test_unreachable_and_too_old_servers_are_clear_errors(tracking, server):
    with tracking.start_run():
        tracking.log_metric("a", 1.0)
    store = tracking.tracking.fluent.current_store()
    store.flush()
    before = store_fingerprint(store.root)
    from sync_helpers import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SyncError, match="Cannot reach the MLflow tracking server") as failed:
        nbtrack.sync.push(nowhere, progress=False)
    assert nowhere in str(failed.value) and "nothing local was changed" in str(failed.value)
    old = Proxy(server.uri, lambda m, path, n: (200, b"1.30.0") if path == "/version" else None)
    try:
        with pytest.raises(SyncError, match=r"runs MLflow 1\.30\.0.*Upgrade the server"):
            nbtrack.sync.push(old.uri, progress=False)
        with pytest.raises(SyncError, match=r"runs MLflow 1\.30\.0"):
            nbtrack.sync.pull(old.uri, progress=False)
    finally:
        old.close()
    ancient = Proxy(server.uri, lambda m, path, n: (404, b"") if path == "/version" else None)
    try:
        with pytest.raises(SyncError, match=r"older than 2\.0"):
            nbtrack.sync.push(ancient.uri, progress=False)
    finally:
        ancient.close()
    assert store_fingerprint(store.root) == before


def test_background_sync_pushes_runs_as_they_end_and_queues_while_offline(tracking, server, client):
    experiment = unique("auto")
    tracking.set_experiment(experiment)
    gate, reached = {"down": True}, []

    def rule(method: str, path: str, n: int) -> tuple[int, bytes] | None:
        if gate["down"]:
            return 503, b""
        reached.append(path)
        return None

    proxy = Proxy(server.uri, rule)
    try:
        syncer = nbtrack.sync.auto(proxy.uri)
        with tracking.start_run(run_name="offline") as run:
            tracking.log_metric("loss", 0.5)
        deadline = time.monotonic() + 20
        while syncer.failures == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        status = repr(tracking.status())
        assert "pending" in status and proxy.uri in status and "retrying" in status
        assert run.info.run_id in syncer.pending() or "*" in syncer.pending()
        gate["down"] = False
        assert syncer.wait(90), syncer.last_error
        with tracking.start_run(run_name="online") as second:
            tracking.log_metric("loss", 0.25)
        assert syncer.wait(60), syncer.last_error
        assert "nothing pending" in repr(tracking.status())
        # One connection for both pushes: the server's version is asked once, not per run.
        assert sum(path.endswith("/version") for path in reached) == 1, reached
    finally:
        nbtrack.sync.auto(None)
        proxy.close()
    store = tracking.tracking.fluent.current_store()
    for run_id in (run.info.run_id, second.info.run_id):
        remote_id = store.get_run(run_id)["synced"][proxy.uri]
        assert_run_equal(client, store, run_id, remote_id)


def test_cli_and_magic(tracking, server, client, capsys, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    from nbtrack import cli

    tracking.set_experiment(experiment := unique("cli"))
    with tracking.start_run(run_name="r"):
        tracking.log_metric("loss", 0.5)
    store = tracking.tracking.fluent.current_store()
    store.flush()
    root = str(store.root)
    assert cli.main(["--store", root, "sync", "push", server.uri, "-e", experiment]) == 0
    assert "1 runs created" in capsys.readouterr().out
    assert cli.main(["--store", root, "sync", "status", server.uri]) == 0
    assert "pushed:   1 runs" in capsys.readouterr().out
    fresh = tmp_path / "fresh"
    assert cli.main(["--store", str(fresh), "sync", "pull", server.uri, "-e", experiment]) == 0
    assert "1 runs new" in capsys.readouterr().out
    assert cli.main(["--store", root, "sync", "push", "http://127.0.0.1:9"]) == 2
    assert "Cannot reach" in capsys.readouterr().err

    shell = InteractiveShell.instance()
    nbtrack.load_ipython_extension(shell)
    try:
        report = shell.run_line_magic("track", f"sync push {server.uri}")
        assert report.unchanged == 1
        assert "pushed:" in str(shell.run_line_magic("track", f"sync status {server.uri}"))
        shell.run_line_magic("track", f"sync on {server.uri}")
        assert "sync: on" in repr(shell.run_line_magic("track", ""))
        shell.run_line_magic("track", "sync off")
        assert "sync: on" not in repr(shell.run_line_magic("track", ""))
    finally:
        nbtrack.unload_ipython_extension(shell)


def test_credentials_in_the_uri_are_never_printed_or_stored(tracking, server):
    with tracking.start_run():
        tracking.log_metric("a", 1.0)
    host = server.uri.split("://")[1]
    report = nbtrack.sync.push(f"http://someone:s3cret-pw@{host}", progress=False)
    store = tracking.tracking.fluent.current_store()
    assert "s3cret" not in str(report)
    for path in store.root.rglob("*"):
        if path.is_file():
            assert b"s3cret" not in path.read_bytes(), path
