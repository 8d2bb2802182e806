"""Model packages in MLflow's MLmodel layout: saving, signatures, and verified loading.

::

    import nbtrack
    from nbtrack.models import infer_signature

    with nbtrack.start_run():
        model = LogisticRegression().fit(X, y)
        info = nbtrack.log_model(model, "model", input_example=X[:5])
    loaded = nbtrack.load_model(info.model_uri)   # checksums verified before unpickling
    loaded.predict(X[:5])                         # input checked against the signature

``mlflow.pyfunc.load_model`` loads the same packages.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use: ``import nbtrack`` links the registry in through this package and
# must stay light.
_LAZY = {
    "ColSpec": "nbtrack.models.signature",
    "Model": "nbtrack.models.mlmodel",
    "ModelInfo": "nbtrack.models.api",
    "ModelIntegrityError": "nbtrack.models.integrity",
    "ModelSignature": "nbtrack.models.signature",
    "PyFuncModel": "nbtrack.models.pyfunc_model",
    "Schema": "nbtrack.models.signature",
    "SchemaEnforcementError": "nbtrack.models.enforcement",
    "TensorSpec": "nbtrack.models.signature",
    "infer_signature": "nbtrack.models.signature",
    "load_model": "nbtrack.models.api",
    "log_model": "nbtrack.models.api",
    "save_model": "nbtrack.models.api",
}

__all__ = [
    "ColSpec",
    "Model",
    "ModelInfo",
    "ModelIntegrityError",
    "ModelSignature",
    "PyFuncModel",
    "Schema",
    "SchemaEnforcementError",
    "TensorSpec",
    "infer_signature",
    "load_model",
    "log_model",
    "save_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nbtrack.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
