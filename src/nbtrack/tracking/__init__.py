"""Runs, experiments and the fluent API over the store (``mlflow.tracking``'s place)."""

from __future__ import annotations

from typing import Any

from nbtrack.tracking.fluent import ActiveRun

__all__ = ["ActiveRun", "MlflowClient"]


def __getattr__(name: str) -> Any:
    if name == "MlflowClient":  # mlflow.tracking.MlflowClient's place; loaded on first use
        from nbtrack.registry.client import MlflowClient  # registry calls included

        return MlflowClient
    raise AttributeError(f"module 'nbtrack.tracking' has no attribute {name!r}")
