"""A real Jupyter server (or JupyterLab, or Notebook 7) on loopback with nbtrack's server
extension enabled and the checkout's JupyterLab extension on its path, isolated from the
user's Jupyter config; for the REST API tests, the browser tests and the benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / "src" / "nbtrack" / "labextension"  # what `make` builds from js/labextension


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Jupyter's config, data and runtime dirs under ``home``; nbtrack's server extension
    enabled there; this checkout's nbtrack first on the path (server and kernels)."""
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"nbtrack.server": True}}})
    )
    data = home / "data"
    (data / "labextensions").mkdir(parents=True, exist_ok=True)
    link = data / "labextensions" / "nbtrack"
    if BUILT.is_dir() and not link.exists():
        link.symlink_to(BUILT)  # the checkout's build, whether or not nbtrack is installed
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)  # no "fetch news?" toast over the page
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_PATH": str(data),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    for variable in ("NBTRACK_DIR", "NBTRACK_TRACKING_URI", "NBTRACK_RUN_ID"):
        env.pop(variable, None)
    env.update(extra or {})
    return env


def call_json(url: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """GET ``url + path`` (POST ``body`` as JSON if given): the status and the decoded
    answer (an error's text as it came)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until_answering(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Return once ``url`` answers; if ``proc`` exits or ``timeout`` seconds pass first,
    kill it and raise with its log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.25)


@contextlib.contextmanager
def jupyter(
    root: Path, home: Path, app: str = "server", args: tuple[str, ...] = (), **env: str
) -> Iterator[SimpleNamespace]:
    """``jupyter <app>`` (server, lab or notebook) serving ``root``; yields its url, token,
    root and log file. Stopped (terminated, then killed) when the block ends."""
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyter", app, "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True", *args,
    ]  # fmt: skip
    if app in ("lab", "notebook"):
        cmd += ["--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None"]
        if app == "notebook":
            cmd[-2:] = ["--JupyterNotebookApp.expose_app_in_browser=True"]
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"{app}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=root, env=isolated_env(home, env), stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{url}/api/status?token={token}", proc, log_path)
        try:
            yield SimpleNamespace(url=url, token=token, root=root, log=log_path, proc=proc)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
