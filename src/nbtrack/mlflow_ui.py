"""``nbtrack ui``: MLflow's web UI (its tracking server) over an nbtrack store."""

from __future__ import annotations

import importlib.util
import subprocess
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


def serve(store_path: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Run MLflow's UI over the store until interrupted; the server's exit code.

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
    try:
        return subprocess.run(server_command(store_path, host, port), check=False).returncode
    except KeyboardInterrupt:  # Ctrl-C reaches the server too, which stops
        return 0
