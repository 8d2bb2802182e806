"""Real MLflow tracking servers for the sync tests: sqlite- or PostgreSQL-backed, with
MLflow's basic-auth app, and a small HTTP proxy in front that counts requests and injects
failures. Everything listens on 127.0.0.1 and is stopped by the fixture that started it."""

from __future__ import annotations

import http.client
import http.server
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
START_TIMEOUT = 240  # s: a first start migrates the database, slow on a loaded machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer(NamedTuple):
    uri: str
    process: subprocess.Popen
    root: Path

    def log(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-3000:]


def start_server(
    root: Path,
    backend: str | None = None,
    app: str | None = None,
    env: dict | None = None,
    workers: int = 1,
) -> MlflowServer:
    """``mlflow server`` on a free port, its artifacts proxied to ``root/artifacts``; one
    worker process unless asked (MLflow's default is 4; the tests run several servers)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        MLFLOW,
        "server",
        "--backend-store-uri",
        backend or f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if app:
        command += ["--app-name", app]
    environment = {**os.environ, **(env or {})}
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        environment.pop(name, None)
    with open(root / "server.log", "wb") as log:
        process = subprocess.Popen(
            command, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=environment,
            start_new_session=True,
        )  # fmt: skip
    server = MlflowServer(f"http://127.0.0.1:{port}", process, root)
    _wait_up(server)
    return server


def _wait_up(server: MlflowServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    port = server.uri.rsplit(":", 1)[1]
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"mlflow server exited:\n{server.log()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"mlflow server did not start in {START_TIMEOUT} s:\n{server.log()}")


def stop_server(server: MlflowServer) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


# -- PostgreSQL -----------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian's layout), if any."""
    base = Path("/usr/lib/postgresql")
    versions = sorted(base.glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


class Postgres(NamedTuple):
    uri: str  # SQLAlchemy URI of the throwaway database
    data: Path
    bin: Path
    user: str | None  # the OS user the cluster runs as (None: this one)


def start_postgres() -> Postgres:
    """A throwaway cluster on a free port; as root, run by the ``postgres`` user (initdb
    refuses root). Skips the test when PostgreSQL is not installed."""
    folder = postgres_bin()
    if folder is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql, as .ci/run does)")
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="nbtrack-pg-", dir="/tmp"))
    os.chmod(root, 0o755)
    data = root / "data"
    if user is not None:
        shutil.chown(root, user)
    port = free_port()
    _as(user, [str(folder / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
               "--no-sync", "-E", "UTF8"])  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    _as(user, [str(folder / "pg_ctl"), "-D", str(data), "-o", options, "-l",
               str(root / "postgres.log"), "-w", "-t", "120", "start"])  # fmt: skip
    uri = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    return Postgres(uri, data, folder, user)


def stop_postgres(cluster: Postgres) -> None:
    _as(cluster.user, [str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate",
                       "-w", "stop"])  # fmt: skip
    shutil.rmtree(cluster.data.parent, ignore_errors=True)


def _as(user: str | None, command: list[str]) -> None:
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=180, cwd="/tmp")


# -- a proxy that counts and injects failures -----------------------------------------------

Rule = Callable[[str, str, int], "tuple[int, bytes] | None"]  # (method, path, n) -> answer


class Proxy:
    """Forwards HTTP to ``target``; ``rule(method, path, n)`` may answer instead (status,
    body), e.g. a 500. ``requests`` counts what reached the proxy. With ``tls`` (a
    certificate and key file), it listens for HTTPS, as a team's server behind TLS."""

    def __init__(
        self, target: str, rule: Rule | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.target = target.split("://", 1)[1]
        self.rule = rule
        self.requests = 0
        self.injected = 0
        self.authorizations: list[str | None] = []  # each request's Authorization header
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.requests += 1
                    proxy.authorizations.append(self.headers.get("Authorization"))
                    n = proxy.requests
                answer = proxy.rule(self.command, self.path, n) if proxy.rule else None
                if answer is not None:
                    with proxy._lock:
                        proxy.injected += 1
                    status, payload = answer
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                host, port = proxy.target.split(":")
                upstream = http.client.HTTPConnection(host, int(port), timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.uri = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files (its own CA)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def store_fingerprint(root: Path) -> dict[str, bytes]:
    """Every file of a store but sync's own state: to show a failed sync changed nothing."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "sync" and p.suffix != ".lock"
    }


# -- comparing a server with a store through MLflow's own client ----------------------------

FLOAT_MAX = 1.7976931348623157e308  # MLflow's SQL stores keep an infinity as this


def same_value(a: float, b: float) -> bool:
    if a != a or b != b:
        return a != a and b != b
    clamp = lambda v: max(-FLOAT_MAX, min(FLOAT_MAX, v))  # noqa: E731
    return clamp(a) == clamp(b)


def history(points) -> list[tuple]:
    return sorted((int(s), int(t), "nan" if v != v else max(-FLOAT_MAX, min(FLOAT_MAX, v)))
                  for s, v, t in points)  # fmt: skip


def assert_run_equal(client, store, run_id: str, remote_id: str, server_side_tags=()) -> None:
    """Every param, tag, metric point, attribute, input and artifact byte of a local run
    equals its copy on the server (read by MlflowClient)."""
    from nbtrack.sync.runs import remote_tags

    row = store.get_run(run_id)
    remote = client.get_run(remote_id)
    experiment = client.get_experiment(remote.info.experiment_id)
    assert experiment.name == store.get_experiment(row["experiment_id"])["name"]
    assert dict(remote.data.params) == row.get("params", {})
    mapping = {r["run_id"]: r.get("synced", {}) for r in store.runs()}
    ids = {k: next(iter(v.values())) for k, v in mapping.items() if v}
    ids.update({k: k for k, v in mapping.items() if not v})
    expected = remote_tags(row, ids) if not row.get("remote") else row.get("tags", {})
    tags = {k: v for k, v in remote.data.tags.items() if k not in server_side_tags}
    assert tags == expected
    info = remote.info
    got = (info.status, info.start_time, info.end_time, info.run_name, info.lifecycle_stage)
    want = (row["status"], row["start_time"], row["end_time"], row["run_name"],
            row["lifecycle_stage"])  # fmt: skip
    assert got == want
    assert set(remote.data.metrics) == set(row.get("metrics", {}))
    for key in row.get("metrics", {}):
        steps, values, times = store.metric_history(run_id, key)
        local = history(zip(steps.tolist(), values.tolist(), times.tolist(), strict=True))
        server = history((m.step, m.value, m.timestamp)
                         for m in client.get_metric_history(remote_id, key))  # fmt: skip
        assert server == sorted(set(local)), key
    local_inputs = {(r["dataset"]["name"], r["dataset"]["digest"])
                    for r in store.records(run_id, "input")}  # fmt: skip
    remote_inputs = {(d.dataset.name, d.dataset.digest)
                     for d in (remote.inputs.dataset_inputs or [])}  # fmt: skip
    assert remote_inputs == local_inputs
    from nbtrack.tracking.artifacts import recorded_artifacts  # fetches a pulled run's

    artifacts = set(recorded_artifacts(store, run_id))
    assert set(remote_files(client, remote_id)) == artifacts
    with tempfile.TemporaryDirectory() as scratch:
        for path in artifacts:
            downloaded = client.download_artifacts(remote_id, path, scratch)
            local = store.artifact_dir(run_id) / path
            assert Path(downloaded).read_bytes() == local.read_bytes(), path


def remote_files(client, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for info in client.list_artifacts(run_id, path):
        found += remote_files(client, run_id, info.path) if info.is_dir else [info.path]
    return found
