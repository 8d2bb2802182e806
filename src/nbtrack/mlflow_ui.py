"""``nbtrack ui``: MLflow's web UI (its tracking server) over an nbtrack store."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from nbtrack.errors import NbtrackError

DEFAULT_HOST = "127.0.0.1"  # loopback: the UI can change and delete runs, and has no login
DEFAULT_PORT = 5000  # MLflow's own default


def store_uri(store_path: Path) -> str:
    """The ``nbtrack:`` URI of a store folder, as MLflow's server is given it."""
    return f"nbtrack://{store_path.resolve()}"


def server_command(
    store_path: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> list[str]:
    """``mlflow server`` with the store as its tracking and its registry store."""
    uri = store_uri(store_path)
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--registry-store-uri", uri,
        "--host", host,
        "--port", str(port),
        "--workers", "1",  # one process: the store's buffers and caches stay in one place
    ]  # fmt: skip


def serve(store_path: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Become MLflow's server over the store (this process is replaced by it, so stopping
    it, by Ctrl-C or a signal, stops the server and its workers; a child could outlive it).

    Raises
    ------
    NbtrackError
        When MLflow is not installed.
    """
    if importlib.util.find_spec("mlflow") is None:
        raise NbtrackError(
            "nbtrack ui runs MLflow's UI, and MLflow is not installed here: "
            "pip install 'nbtrack[mlflow]'."
        )
    print(f"MLflow's UI over {store_path.resolve()}: http://{host}:{port}", flush=True)
    command = server_command(store_path, host, port)
    os.execv(command[0], command)
