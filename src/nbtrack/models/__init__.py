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

from nbtrack.models.api import ModelInfo, load_model, log_model, save_model
from nbtrack.models.enforcement import SchemaEnforcementError
from nbtrack.models.integrity import ModelIntegrityError
from nbtrack.models.mlmodel import Model
from nbtrack.models.pyfunc_model import PyFuncModel
from nbtrack.models.signature import ColSpec, ModelSignature, Schema, TensorSpec, infer_signature

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
