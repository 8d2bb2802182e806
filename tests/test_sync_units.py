"""Sync's parts that need no server: log_batch sizing, the merge rule, URIs, and nbtrack
without MLflow installed."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from nbtrack.errors import InvalidParameterError
from nbtrack.sync.batches import batches, series
from nbtrack.sync.runs import merge_tags
from nbtrack.sync.server import display_uri, scrub, translate

pytest.importorskip("mlflow")
SRC = Path(__file__).resolve().parents[1] / "src"


def test_batches_keep_to_mlflows_limits():
    params = {f"p{i}": str(i) for i in range(250)}
    tags = {f"t{i}": "v" for i in range(30)}
    loss = series("loss", list(range(2500)), [float(i) for i in range(2500)], [1000] * 2500)
    sent = list(batches(params, tags, [loss]))
    assert all(len(b.params) <= 100 and len(b.tags) <= 100 and b.size <= 1000 for b in sent)
    assert sum(len(b.params) for b in sent) == 250 and sum(len(b.metrics) for b in sent) == 2500
    assert len(sent) == 3  # 2,780 entries: 100 params a request, points filling the rest


def test_points_are_spelled_as_protobuf_json_and_keep_their_order_across_requests():
    _, odd = series("x", [0, 1, 2, 3], [float("nan"), math.inf, -math.inf, 0.25], [1, 2, 3, 4])
    assert [p["value"] for p in odd] == ["NaN", "Infinity", "-Infinity", 0.25]
    many = [series(f"m{k}", list(range(700)), [0.5] * 700, [1] * 700) for k in range(3)]
    sent = list(batches({}, {}, many))
    assert [b.size for b in sent] == [1000, 1000, 100]
    flat = [(p["key"], p["step"]) for b in sent for p in b.metrics]
    assert flat == [(f"m{k}", step) for k in range(3) for step in range(700)]


def test_batches_stay_under_a_megabyte():
    params = {f"p{i}": "é" * 5000 for i in range(100)}  # escaped as \\u00e9: 30 kB each
    sent = list(batches(params, {}, []))
    assert len(sent) > 1
    for batch in sent:
        size = sum(len(key) + 6 * len(value) + 24 for key, value in batch.params)
        assert size < 1_000_000


def test_merge_rule():
    base = ({"a": "1", "b": "1", "c": "1"}, {"a": "1", "b": "1", "c": "1", "server": "x"})
    local = {"a": "2", "b": "1", "c": "3"}  # a: changed here; c: both
    remote = {"a": "1", "b": "9", "c": "4", "server": "x"}  # b: changed there; c: both
    to_server, to_local, conflicts = merge_tags(local, remote, base, local_wins=True)
    assert to_server == {"a": "2", "c": "3"} and to_local == {"b": "9"}
    assert conflicts == [("c", "3", "4")]
    _, to_local, conflicts = merge_tags(local, remote, base, local_wins=False)
    assert to_local == {"b": "9", "c": "4"} and conflicts == [("c", "4", "3")]


def test_server_uris_never_keep_credentials():
    assert display_uri("http://bob:pw@host:5000/") == "http://host:5000"
    assert scrub("failed: https://bob:pw@host/api") == "failed: https://host/api"
    with pytest.raises(InvalidParameterError, match="http://HOST:PORT"):
        display_uri("file:///tmp/x")


def test_nbtrack_imports_without_mlflow_and_sync_says_how_to_install_it(tmp_path):
    script = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError("No module named 'mlflow'")
sys.meta_path.insert(0, Block())
import nbtrack, nbtrack.sync
nbtrack.set_tracking_uri(sys.argv[1])
try:
    nbtrack.sync.push("http://127.0.0.1:9")
except nbtrack.errors.SyncError as error:
    print(error)
"""
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pip install 'nbtrack[mlflow]'" in done.stdout


def test_a_status_is_read_from_the_error_not_from_the_servers_port():
    from mlflow.exceptions import MlflowException

    name = "http://127.0.0.1:40137"
    retried = MlflowException(
        f"API request to {name}/api/2.0/mlflow/runs/create failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=40137): Max retries exceeded with url: "
        "/api/2.0/mlflow/runs/create (Caused by ResponseError('too many 500 error responses'))"
    )
    assert "keeps failing (HTTP 500 after every retry)" in str(translate(name, "x", retried))
    refused = MlflowException(
        "API request to endpoint /api/2.0/mlflow/runs/create failed with error code 401 != 200."
    )
    assert "refused the credentials (HTTP 401)" in str(translate(name, "x", refused))
    forbidden = MlflowException(f"403 Client Error: FORBIDDEN for url: {name}/api/2.0/x")
    assert "refused access (HTTP 403)" in str(translate(name, "x", forbidden))
