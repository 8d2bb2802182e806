"""Building a model package in MLflow's MLmodel layout, as a mapping of file name to bytes.

::

    MLmodel                      flavors, signature, input example info (YAML)
    model.pkl                    the model, cloudpickled
    input_example.json           the example, as MLflow saves it (split-oriented for frames)
    serving_input_example.json   the same as a scoring-server request body
    requirements.txt             pinned from the running environment
    python_env.yaml, conda.yaml  the Python version and build tools

Scikit-learn estimators get the ``sklearn`` flavor and MLflow's own loader module behind
``python_function`` (so ``mlflow.pyfunc.load_model`` reads them); any other object with
a ``predict`` method gets nbtrack's loader module (:mod:`nbtrack.models.loader`).
"""

from __future__ import annotations

import json
import sys
import uuid
import warnings
from typing import Any

from nbtrack.errors import InvalidParameterError
from nbtrack.models import environment
from nbtrack.models.mlmodel import MLMODEL_FILE, PYFUNC_FLAVOR, SKLEARN_FLAVOR, Model
from nbtrack.models.signature import ModelSignature, as_signature, infer_schema

MODEL_FILE = "model.pkl"
EXAMPLE_FILE = "input_example.json"
SERVING_EXAMPLE_FILE = "serving_input_example.json"
SERIALIZATION_FORMATS = ("cloudpickle", "pickle")
NBTRACK_LOADER = "nbtrack.models.loader"


def is_sklearn_model(model: Any) -> bool:
    """True for scikit-learn estimators (checked without importing sklearn if it is not loaded)."""
    if "sklearn" not in sys.modules:
        return False
    from sklearn.base import BaseEstimator

    return isinstance(model, BaseEstimator)


def build_package(
    model: Any,
    *,
    input_example: Any = None,
    signature: Any = None,
    serialization_format: str | None = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    conda_env: Any = None,
    predict_fn: str = "predict",
    metadata: dict[str, Any] | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
) -> tuple[dict[str, bytes], Model]:
    """The files of a package for ``model`` and its ``MLmodel`` metadata.

    Raises
    ------
    InvalidParameterError
        If the model has no ``predict_fn`` method, the serialization format is unknown,
        or the input example or signature cannot be used.
    """
    sklearn = is_sklearn_model(model)
    if not callable(getattr(model, predict_fn, None)):
        raise InvalidParameterError(
            f"Cannot package a {type(model).__name__}: it has no {predict_fn}() method. "
            "nbtrack packages scikit-learn estimators and any object with a predict method."
        )
    fmt = serialization_format or "cloudpickle"
    if fmt not in SERIALIZATION_FORMATS:
        raise InvalidParameterError(
            f"serialization_format={fmt!r} is not supported; use one of "
            f"{', '.join(SERIALIZATION_FORMATS)}."
        )
    files = {MODEL_FILE: _pickle(model, fmt)}
    example_info = None
    if input_example is not None:
        example, example_files, example_info = _example_files(input_example)
        files.update(example_files)
        if signature is None:
            signature = _infer(model, example, predict_fn)
    if signature is False:  # MLflow's way to ask for no signature, not even an inferred one
        signature = None
    requirements = environment.requirements(
        environment.SKLEARN_REQUIREMENTS if sklearn else environment.PYFUNC_REQUIREMENTS,
        None if sklearn else model,
        pip_requirements,
        extra_pip_requirements,
    )
    files.update(_environment_files(requirements, conda_env))
    mlmodel = Model(
        flavors=_flavors(model, sklearn, fmt, predict_fn),
        signature=as_signature(signature),
        saved_input_example_info=example_info,
        run_id=run_id,
        artifact_path=artifact_path,
        model_uuid=uuid.uuid4().hex,
        model_size_bytes=sum(len(data) for data in files.values()),
        nbtrack_version=_nbtrack_version(),
        **({"metadata": metadata} if metadata else {}),
    )
    files[MLMODEL_FILE] = mlmodel.to_yaml().encode("utf-8")
    return files, mlmodel


def _pickle(model: Any, fmt: str) -> bytes:
    if fmt == "pickle":
        import pickle

        return pickle.dumps(model)
    import cloudpickle

    return cloudpickle.dumps(model)


def _flavors(model: Any, sklearn: bool, fmt: str, predict_fn: str) -> dict[str, dict[str, Any]]:
    env = {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    if sklearn:
        import sklearn as sk

        return {
            PYFUNC_FLAVOR: {
                "env": env,
                "loader_module": "mlflow.sklearn",
                "model_path": MODEL_FILE,
                "predict_fn": predict_fn,
                "python_version": environment.python_version(),
            },
            SKLEARN_FLAVOR: {
                "code": None,
                "pickled_model": MODEL_FILE,
                "serialization_format": fmt,
                "sklearn_version": sk.__version__,
            },
        }
    return {
        PYFUNC_FLAVOR: {
            "env": env,
            "loader_module": NBTRACK_LOADER,
            "data": MODEL_FILE,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "predict_fn": predict_fn,
            "python_version": environment.python_version(),
            "serialization_format": fmt,
        }
    }


def _infer(model: Any, example: Any, predict_fn: str) -> ModelSignature:
    """The signature of ``example`` and, if predicting on it works, of the output."""
    inputs = infer_schema(example)
    try:
        outputs = infer_schema(getattr(model, predict_fn)(example))
    except Exception as error:  # a model that cannot score its own example still gets saved
        warnings.warn(
            f"Could not infer the output schema by predicting on the input example "
            f"({type(error).__name__}: {error}); only the input schema is saved.",
            stacklevel=4,
        )
        outputs = None
    return ModelSignature(inputs, outputs)


def _example_files(example: Any) -> tuple[Any, dict[str, bytes], dict[str, Any]]:
    """The example as data, its two JSON files, and MLmodel's ``saved_input_example_info``."""
    import numpy as np
    import pandas as pd

    if isinstance(example, pd.Series):
        example = example.to_frame()
    elif isinstance(example, dict) and not all(isinstance(v, np.ndarray) for v in example.values()):
        example = pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in example.items()})
    elif isinstance(example, (list, tuple)):
        example = np.asarray(example)
    info: dict[str, Any] = {
        "artifact_path": EXAMPLE_FILE,
        "serving_input_path": SERVING_EXAMPLE_FILE,
    }
    if isinstance(example, pd.DataFrame):
        split = example.to_dict(orient="split")
        body = {"columns": [str(c) for c in split["columns"]], "data": split["data"]}
        serving = {"dataframe_split": body}
        info.update(type="dataframe", pandas_orient="split")
    elif isinstance(example, np.ndarray):
        body = example.tolist()
        serving = {"inputs": body}
        info["type"] = "ndarray"
    elif isinstance(example, dict):
        body = {k: v.tolist() for k, v in example.items()}
        serving = {"inputs": body}
        info["type"] = "ndarray"
    else:
        raise InvalidParameterError(
            f"input_example of type {type(example).__name__} is not supported: pass a pandas "
            "DataFrame or Series, a numpy array, a list, or a dict."
        )
    files = {
        EXAMPLE_FILE: json.dumps(body, default=_json_value).encode("utf-8"),
        SERVING_EXAMPLE_FILE: json.dumps(serving, default=_json_value, indent=2).encode("utf-8"),
    }
    return example, files, info


def _json_value(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _environment_files(requirements: list[str], conda_env: Any) -> dict[str, bytes]:
    import yaml

    if conda_env is None:
        conda = environment.conda_env(requirements)
    elif isinstance(conda_env, dict):
        conda = conda_env
    else:
        with open(conda_env, encoding="utf-8") as handle:
            conda = yaml.safe_load(handle)
    dump = lambda data: yaml.safe_dump(data, default_flow_style=False).encode()  # noqa: E731
    return {
        "requirements.txt": ("\n".join(requirements) + "\n").encode("utf-8"),
        "python_env.yaml": dump(environment.python_env()),
        "conda.yaml": dump(conda),
    }


def _nbtrack_version() -> str:
    from nbtrack.version import __version__

    return __version__
