"""``mlflow.sklearn``'s place: log and load scikit-learn models in MLflow's format.

``import nbtrack as mlflow`` code calls ``mlflow.sklearn.log_model(model, "model", ...)``
unchanged. Packages carry the ``sklearn`` flavor (cloudpickle) and MLflow's loader
module, so ``mlflow.sklearn.load_model`` reads them too.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from nbtrack.autologging import sklearn_autolog as autolog
from nbtrack.models.api import ModelInfo, load_native, save_model
from nbtrack.models.mlmodel import SKLEARN_FLAVOR

FLAVOR_NAME = SKLEARN_FLAVOR
SERIALIZATION_FORMAT_PICKLE = "pickle"
SERIALIZATION_FORMAT_CLOUDPICKLE = "cloudpickle"

__all__ = ["FLAVOR_NAME", "autolog", "load_model", "log_model", "save_model"]


def log_model(
    sk_model: Any,
    name: str | None = None,
    conda_env: Any = None,
    code_paths: list[str] | None = None,
    serialization_format: str | None = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: int = 300,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    pyfunc_predict_fn: str = "predict",
    metadata: dict[str, Any] | None = None,
    *,
    artifact_path: str | None = None,
    reason: str | None = None,
    **unsupported: Any,
) -> ModelInfo:
    """Log a scikit-learn model to the active run, as MLflow's ``mlflow.sklearn.log_model``.

    Parameters
    ----------
    sk_model
        The fitted estimator (or pipeline).
    name
        The package's artifact path in the run (MLflow's second positional argument,
        also accepted as ``artifact_path=``); ``"model"`` by default.
    registered_model_name
        Also register the package as the next version of this model.
    signature, input_example
        As in :func:`nbtrack.log_model`.
    reason
        nbtrack's: why the registration happens (recorded with the version).

    Returns
    -------
    ModelInfo
    """
    from nbtrack.models.api import log_model as log

    if code_paths:
        warnings.warn("code_paths is not supported by nbtrack and is ignored.", stacklevel=2)
    if unsupported:
        warnings.warn(
            f"nbtrack.sklearn.log_model ignores {', '.join(sorted(unsupported))}.", stacklevel=2
        )
    return log(
        sk_model,
        name or artifact_path or "model",
        input_example,
        signature,
        registered_model_name=registered_model_name,
        serialization_format=serialization_format,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        conda_env=conda_env,
        pyfunc_predict_fn=pyfunc_predict_fn,
        metadata=metadata,
        reason=reason,
    )


def load_model(model_uri: str, dst_path: str | os.PathLike[str] | None = None) -> Any:
    """The fitted estimator from any model URI, after its checksums are verified."""
    return load_native(model_uri, FLAVOR_NAME, dst_path)
