"""``nbtrack serve`` and ``nbtrack predict``: MLflow's scoring server and batch scoring, on a store.

Both point MLflow's tracking and registry URIs at the store and hand the model URI
(``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``models:/NAME/STAGE``, ``runs:/RUN/PATH``)
to MLflow's own machinery, in this Python environment (MLflow's ``--env-manager local``):
the model is fetched through nbtrack's MLflow plugin, which checks every file against its
recorded SHA-256, and scored by MLflow's pyfunc with its signature enforcement, protocol
and errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nbtrack.errors import NbtrackError

DEFAULT_HOST = "127.0.0.1"  # loopback: a model server is reachable from outside only on purpose
DEFAULT_PORT = 5000  # MLflow's


def serve(
    model_uri: str,
    store_root: str | Path,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int | None = None,
) -> int:
    """Run MLflow's scoring server for ``model_uri`` from the store at ``store_root`` until it
    stops, or until Ctrl-C or SIGTERM stop this process (which then stops the server);
    return its exit code. Meant for a command's main thread: it handles SIGTERM.

    Raises
    ------
    NbtrackError
        MLflow is not installed, or it cannot fetch the model (the message is MLflow's).
    """
    backend = _mlflow_backend(model_uri, store_root, workers)
    # SIGTERM ends this process through the ``finally`` below, so the server goes with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with _mlflow_errors():
        server = backend.serve(
            model_uri=model_uri, port=port, host=host, timeout=None, synchronous=False
        )
    print(
        f"nbtrack: serving {model_uri} from {Path(store_root)} on http://{host}:{port} "
        "(MLflow's scoring server; Ctrl-C stops it)",
        file=sys.stderr,
        flush=True,
    )
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how one stops a server; the server goes below
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait()


def predict(
    model_uri: str,
    store_root: str | Path,
    input_path: str | Path,
    output_path: str | Path | None = None,
    content_type: str | None = None,
) -> None:
    """Score the file ``input_path`` (CSV, or JSON in the scoring server's formats) with
    ``model_uri`` from the store, as ``mlflow models predict --env-manager local`` does.

    The predictions go to ``output_path`` as MLflow writes them (``{"predictions": ...}``),
    or as a table when the name ends in ``.csv``; without ``output_path``, to stdout.
    ``content_type`` (``csv`` or ``json``) defaults to the input file's suffix.

    Raises
    ------
    NbtrackError
        MLflow is not installed, cannot fetch the model, or refused the input (the
        message is MLflow's, e.g. a column the signature requires is missing).
    """
    _use_store(store_root)
    from mlflow.models import predict as mlflow_predict

    kind = content_type or ("json" if Path(input_path).suffix.lower() == ".json" else "csv")
    as_table = output_path is not None and Path(output_path).suffix.lower() == ".csv"
    with tempfile.TemporaryDirectory(prefix="nbtrack-predict-") as scratch:
        written = Path(scratch) / "predictions.json" if as_table else output_path
        with _mlflow_errors():
            mlflow_predict(
                model_uri=model_uri,
                input_path=str(input_path),
                content_type=kind,
                output_path=None if written is None else str(written),
                env_manager="local",
            )
        if as_table:
            _predictions_table(json.loads(Path(written).read_text())).to_csv(
                output_path, index=False
            )


def _predictions_table(response: dict[str, Any]) -> Any:
    """The scoring server's ``{"predictions": ...}`` as a DataFrame: one ``prediction``
    column for a model that returns one value a row, else the columns it returns."""
    import pandas as pd

    predictions = response["predictions"]
    if isinstance(predictions, list) and not any(isinstance(p, dict | list) for p in predictions):
        return pd.DataFrame({"prediction": predictions})
    return pd.DataFrame(predictions)


def _store_uri(store_root: str | Path) -> str:
    """The plugin's tracking URI for the store at ``store_root``: ``nbtrack:///abs/path``."""
    return "nbtrack://" + Path(store_root).resolve().as_posix()


def _mlflow_backend(model_uri: str, store_root: str | Path, workers: int | None) -> Any:
    _use_store(store_root)
    from mlflow.models.flavor_backend_registry import get_flavor_backend

    # MLflow starts the server as ``uvicorn ...`` from $PATH: make it this Python's, so the
    # server runs in the environment that has nbtrack and the model's libraries, activated
    # or not.
    scripts = str(Path(sys.executable).parent)
    paths = os.environ.get("PATH", "").split(os.pathsep)
    if paths[0] != scripts:
        os.environ["PATH"] = os.pathsep.join([scripts, *paths])
    with _mlflow_errors():
        return get_flavor_backend(model_uri, env_manager="local", workers=workers)


def _use_store(store_root: str | Path) -> None:
    """MLflow's tracking and registry URIs to the store, for this process and (through the
    variables MLflow sets with them) the processes it starts."""
    mlflow = _import_mlflow()
    uri = _store_uri(store_root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def _import_mlflow() -> Any:
    try:
        import mlflow.models
    except ImportError:
        raise NbtrackError(
            "nbtrack serve and nbtrack predict run MLflow's scoring server, and MLflow is "
            "not installed: pip install 'nbtrack[mlflow]'."
        ) from None
    return mlflow


@contextlib.contextmanager
def _mlflow_errors() -> Iterator[None]:
    """MLflow's exceptions as nbtrack's, keeping MLflow's message and error code."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        raise NbtrackError(error.message, error.error_code) from error
