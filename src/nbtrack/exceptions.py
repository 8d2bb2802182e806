"""``mlflow.exceptions``'s place: MLflow's exception names over nbtrack's one hierarchy.

``except nbtrack.exceptions.MlflowException`` catches every error nbtrack raises on
purpose, as ``except mlflow.exceptions.MlflowException`` does in MLflow; the classes
below it (see :mod:`nbtrack.errors`) say more precisely what went wrong.
"""

from __future__ import annotations

import importlib
from typing import Any

from nbtrack.errors import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    InvalidFilterError,
    InvalidParameterError,
    MlflowException,
    NbtrackError,
    NotFoundError,
    RunStateError,
    StoreError,
)

__all__ = [
    "BAD_REQUEST",
    "INTERNAL_ERROR",
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "InvalidFilterError",
    "InvalidParameterError",
    "MlflowException",
    "NbtrackError",
    "NotFoundError",
    "RunStateError",
    "StoreError",
]

# The errors of the model and registry layers, loaded on first use so that importing
# this module stays as light as ``import nbtrack``.
_LAZY = {
    "ModelIntegrityError": "nbtrack.models.integrity",
    "SchemaEnforcementError": "nbtrack.models.enforcement",
    "TransitionRefused": "nbtrack.registry.gates",
}
__all__ += sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nbtrack.exceptions' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
