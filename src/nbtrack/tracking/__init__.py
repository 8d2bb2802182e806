"""Runs, experiments and the fluent API over the store (``mlflow.tracking``'s place)."""

from nbtrack.tracking.fluent import ActiveRun

__all__ = ["ActiveRun"]
