"""``nbtrack serve`` / ``nbtrack predict`` and MLflow's own ``mlflow models serve`` /
``mlflow models predict`` on a model registered in an nbtrack store: real servers on free
loopback ports, real requests in every format of MLflow's scoring protocol."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest

import nbtrack
from model_helpers import classifier, iris
from nbtrack import registry
from nbtrack.cli import main
from nbtrack.tracking import fluent
from nbtrack.tracking.session import Session, close_stores
from plugin_fixtures import CLEARED
from server_helpers import free_port, wait_until_answering

ROOT = Path(__file__).resolve().parents[1]
slow = pytest.mark.slow  # a real scoring server starts in a few seconds; each test waits for one
CHAMPION = "models:/iris@champion"
MISSING = "petal width (cm)"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A store where ``iris`` version 1 (C=1) holds ``@champion`` and version 2 (C=0.01,
    so its predictions differ) is the latest: serving the alias must pick version 1."""
    root = tmp_path_factory.mktemp("serving")
    X, _ = iris()
    session = Session(root / "store")
    with fluent.use_session(session):
        for c in (1.0, 0.01):
            with nbtrack.start_run() as run:
                nbtrack.sklearn.log_model(classifier(c), "model", input_example=X.head(3))
            nbtrack.register_model(f"runs:/{run.info.run_id}/model", "iris")
        registry.set_alias("iris", "champion", 1)
    session.close()
    close_stores()
    sample = X.iloc[::7].reset_index(drop=True)  # every class
    expected = classifier(1.0).predict(sample)
    assert (expected != classifier(0.01).predict(sample)).any()  # the versions tell apart
    assert len(set(expected)) == 3
    return SimpleNamespace(root=root, path=root / "store", X=sample, expected=expected.tolist())


def _env(**extra: str) -> dict[str, str]:
    """This environment less nbtrack's and MLflow's variables; the checkout's src first."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return {**env, **extra}


def _nbtrack(*args: str) -> list[str]:
    return [sys.executable, "-m", "nbtrack", *args]


def _mlflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlflow", *args]


@contextlib.contextmanager
def _server(command: list[str], cwd: Path, env: dict[str, str]) -> Iterator[SimpleNamespace]:
    """``command --port N`` on a free port; yields once ``/ping`` answers. Stopped (SIGTERM,
    then killed) when the block ends."""
    port = free_port()
    log_path = cwd / f"server-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*command, "--port", str(port)], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{url}/ping", proc, log_path)
    try:
        yield SimpleNamespace(url=url, port=port, proc=proc, log=log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except (urllib.error.URLError, OSError):
        return None


def _post(url: str, body: str, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _payloads(X: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """The same rows in each of MLflow's request formats: (body, content type)."""
    split = json.loads(X.to_json(orient="split", index=False))
    return {
        "dataframe_split": (json.dumps({"dataframe_split": split}), "application/json"),
        "dataframe_records": (
            json.dumps({"dataframe_records": X.to_dict(orient="records")}),
            "application/json",
        ),
        "inputs": (json.dumps({"inputs": X.to_dict(orient="list")}), "application/json"),
        "instances": (
            json.dumps({"instances": X.to_dict(orient="records")}),
            "application/json",
        ),
        "csv": (X.to_csv(index=False), "text/csv"),
    }


@pytest.fixture(scope="module")
def served(store: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """``nbtrack --store PATH serve models:/iris@champion``, PATH without this Python's
    scripts folder (the server must still be this environment's)."""
    env = _env(PATH=os.pathsep.join(["/usr/bin", "/bin"]))
    with _server(_nbtrack("--store", str(store.path), "serve", CHAMPION), store.root, env) as s:
        yield s


# -- nbtrack serve ---------------------------------------------------------------------------


@slow
@pytest.mark.parametrize(
    "form", ["dataframe_split", "dataframe_records", "inputs", "instances", "csv"]
)
def test_nbtrack_serve_answers_invocations_with_the_alias_versions_predictions(
    store: SimpleNamespace, served: SimpleNamespace, form: str
) -> None:
    body, content_type = _payloads(store.X)[form]
    status, answer = _post(f"{served.url}/invocations", body, content_type)
    assert status == 200, answer
    assert answer == {"predictions": store.expected}


@slow
def test_nbtrack_serve_answers_ping_and_version_on_loopback(served: SimpleNamespace) -> None:
    assert _get(f"{served.url}/ping") == (200, "\n")
    assert _get(f"{served.url}/version") == (200, mlflow.__version__)
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{served.port}"], capture_output=True, text=True
    ).stdout
    assert f"127.0.0.1:{served.port}" in listening
    assert f"0.0.0.0:{served.port}" not in listening


@slow
def test_a_payload_without_a_signature_column_gets_mlflows_400(
    store: SimpleNamespace, served: SimpleNamespace
) -> None:
    body, content_type = _payloads(store.X.drop(columns=[MISSING]))["dataframe_split"]
    status, answer = _post(f"{served.url}/invocations", body, content_type)
    assert status == 400
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert f"Model is missing inputs ['{MISSING}']" in answer["message"]


@slow
def test_a_payload_in_no_known_format_gets_mlflows_400(served: SimpleNamespace) -> None:
    status, answer = _post(f"{served.url}/invocations", '{"rows": [[1, 2]]}', "application/json")
    assert status == 400
    assert answer["error_code"] == "BAD_REQUEST"
    assert "dataframe_split" in answer["message"]  # MLflow names the formats it accepts
    status, answer = _post(f"{served.url}/invocations", "{not json", "application/json")
    assert status == 400
    assert answer["error_code"] == "BAD_REQUEST"


@slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_nbtrack_serve_finds_the_store_by_nbtrack_dir_and_stops_with_its_server(
    store: SimpleNamespace, stop: signal.Signals
) -> None:
    env = _env(NBTRACK_DIR=str(store.path))
    with _server(_nbtrack("serve", CHAMPION), store.root, env) as server:
        body, content_type = _payloads(store.X)["dataframe_records"]
        status, answer = _post(f"{server.url}/invocations", body, content_type)
        assert (status, answer) == (200, {"predictions": store.expected})
        server.proc.send_signal(stop)  # to nbtrack alone, not its process group
        assert server.proc.wait(30) == (0 if stop == signal.SIGINT else 128 + stop)
        assert not _listening(server.port)


# -- MLflow's own commands on the store ------------------------------------------------------


@slow
def test_mlflow_models_serve_serves_the_alias_from_an_nbtrack_tracking_uri(
    store: SimpleNamespace,
) -> None:
    scripts = str(Path(sys.executable).parent)  # MLflow runs `uvicorn` from PATH
    env = _env(
        MLFLOW_TRACKING_URI=f"nbtrack://{store.path}",
        PATH=os.pathsep.join([scripts, os.environ.get("PATH", "")]),
    )
    command = _mlflow("models", "serve", "-m", CHAMPION, "--env-manager", "local")
    with _server(command, store.root, env) as server:
        for body, content_type in _payloads(store.X).values():
            status, answer = _post(f"{server.url}/invocations", body, content_type)
            assert (status, answer) == (200, {"predictions": store.expected})


@slow
def test_nbtrack_predict_and_mlflow_models_predict_write_the_same_predictions(
    store: SimpleNamespace, tmp_path: Path
) -> None:
    store.X.to_csv(tmp_path / "in.csv", index=False)
    env = _env(NBTRACK_DIR=str(store.path))
    for output in ("ours.csv", "ours.json"):
        predict = _nbtrack("predict", CHAMPION, "-i", "in.csv", "-o", output)
        done = subprocess.run(predict, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    theirs = _mlflow(
        "models", "predict", "-m", CHAMPION, "-i", "in.csv", "-t", "csv", "-o", "theirs.json",
        "--env-manager", "local",
    )  # fmt: skip
    env = _env(MLFLOW_TRACKING_URI=f"nbtrack://{store.path}")
    done = subprocess.run(theirs, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "ours.csv")
    assert list(table.columns) == ["prediction"]
    assert table["prediction"].tolist() == store.expected
    assert json.loads((tmp_path / "theirs.json").read_text()) == {"predictions": store.expected}
    assert (tmp_path / "ours.json").read_text() == (tmp_path / "theirs.json").read_text()


# -- errors ----------------------------------------------------------------------------------


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For ``main`` called here: what the commands set (MLflow's URIs and their variables,
    PATH) is put back afterwards, and the stores they open are closed."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    for variable in (*CLEARED, "PATH"):
        monkeypatch.setenv(variable, os.environ.get(variable, ""))  # recorded, to put back
        if variable != "PATH":
            monkeypatch.delenv(variable)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    yield
    close_stores()


@slow  # MLflow's predict end to end: it loads the model and checks every installed version
@pytest.mark.usefixtures("in_process")
def test_nbtrack_predict_refuses_input_without_a_signature_column(
    store: SimpleNamespace, tmp_path: Path, capsys
) -> None:
    store.X.drop(columns=[MISSING]).to_csv(tmp_path / "in.csv", index=False)
    output = tmp_path / "out.csv"
    argv = ["--store", str(store.path), "predict", CHAMPION, "-i", str(tmp_path / "in.csv")]
    assert main([*argv, "-o", str(output)]) == 2
    assert f"Model is missing inputs ['{MISSING}']" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.usefixtures("in_process")
def test_an_unknown_alias_is_mlflows_error_and_starts_no_server(
    store: SimpleNamespace, capsys
) -> None:
    port = free_port()
    argv = ["--store", str(store.path), "serve", "models:/iris@nope", "--port", str(port)]
    assert main(argv) == 2
    assert "has no alias 'nope' (aliases: champion)" in capsys.readouterr().err
    assert not _listening(port)


@pytest.mark.usefixtures("in_process")
@pytest.mark.parametrize("command", [["serve"], ["predict", "-i", "in.csv"]])
def test_without_mlflow_the_commands_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, command: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` meets uninstalled
    assert main(["--store", str(tmp_path / "store"), command[0], CHAMPION, *command[1:]]) == 2
    err = capsys.readouterr().err
    assert "nbtrack serve and nbtrack predict run MLflow's scoring server" in err
    assert "pip install 'nbtrack[mlflow]'" in err
