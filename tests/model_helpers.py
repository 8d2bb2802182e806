"""Shared helpers for the model and registry tests: small real sklearn models logged to runs."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd


@functools.cache
def iris() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@functools.cache
def classifier(c: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression

    X, y = iris()
    return LogisticRegression(C=c, max_iter=1000).fit(X, y)


def logged_run(nbtrack, auc: float, *, name: str = "model", c: float = 1.0, **metrics) -> str:
    """A finished run with ``val_auc`` (and ``metrics``) and a model package at ``name``."""
    X, _ = iris()
    with nbtrack.start_run() as run:
        nbtrack.log_param("C", c)
        nbtrack.log_metrics({"val_auc": auc, **metrics})
        nbtrack.log_model(classifier(c), name, input_example=X.head(3))
    return run.info.run_id


def register(nbtrack, name: str, auc: float, **metrics) -> int:
    """Log a run with a model and register it as the next version of ``name``."""
    run_id = logged_run(nbtrack, auc, **metrics)
    return nbtrack.register_model(f"runs:/{run_id}/model", name).version


def store_path(nbtrack) -> Path:
    return Path(unquote(urlparse(nbtrack.get_tracking_uri()).path))


def artifacts(nbtrack, run_id: str) -> Path:
    return store_path(nbtrack) / "runs" / run_id / "artifacts"


def registry_bytes(nbtrack) -> bytes:
    path = store_path(nbtrack) / "registry.jsonl"
    return path.read_bytes() if path.exists() else b""
