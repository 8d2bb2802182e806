"""Real MLflow pointed at an nbtrack store through the plugin, for one test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import fluent as mlflow_fluent

from nbtrack.tracking import fluent
from nbtrack.tracking.session import Session, close_stores

CLEARED = (
    "NBTRACK_DIR",
    "NBTRACK_TRACKING_URI",
    "NBTRACK_RUN_ID",
    "NBTRACK_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
)


@contextlib.contextmanager
def mlflow_on_nbtrack(root: Path, uri: str | None = None) -> Iterator[Path]:
    """MLflow's tracking URI set to the nbtrack store ``root / "store"`` (or ``uri``), with
    a fresh nbtrack session on it, the working folder ``root`` and the variables cleared;
    runs left open end KILLED and the stores close afterwards."""
    store_dir = root / "store"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for variable in CLEARED:
            patch.delenv(variable, raising=False)
        patch.setattr(mlflow_fluent, "_active_experiment_id", None)
        mlflow.set_tracking_uri(uri or f"nbtrack://{store_dir}")
        session = Session(store_dir)
        with fluent.use_session(session):
            try:
                yield store_dir
            finally:
                while mlflow.active_run() is not None:
                    mlflow.end_run("KILLED")
                session.close("KILLED")
                mlflow.set_tracking_uri(None)
        close_stores()
