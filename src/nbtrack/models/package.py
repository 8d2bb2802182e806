"""Building a model package in MLflow's MLmodel layout, as a mapping of file name to
content (bytes, or a file to copy).

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
:mod:`nbtrack.models.python_package` builds packages of custom python models on the
same steps (:func:`add_example`, :func:`finish`).
"""

from __future__ import annotations

import json
import sys
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
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

PackageFiles = dict[str, "bytes | Path"]  # file name in the package -> content or a file to copy


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
) -> tuple[PackageFiles, Model]:
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
    files: PackageFiles = {MODEL_FILE: _pickle(model, fmt)}
    signature, example_info = add_example(
        files, input_example, signature, getattr(model, predict_fn)
    )
    requirements = environment.requirements(
        environment.SKLEARN_REQUIREMENTS if sklearn else environment.PYFUNC_REQUIREMENTS,
        None if sklearn else model,
        pip_requirements,
        extra_pip_requirements,
    )
    return finish(
        files,
        _flavors(model, sklearn, fmt, predict_fn),
        signature,
        example_info,
        requirements,
        conda_env,
        metadata=metadata,
        run_id=run_id,
        artifact_path=artifact_path,
    )


def add_example(
    files: PackageFiles, input_example: Any, signature: Any, predict: Callable[[Any], Any]
) -> tuple[ModelSignature | None, dict[str, Any] | None]:
    """Add the input example's files; the signature (given, or inferred from the example
    and ``predict``'s output on it; ``False`` for none) and ``saved_input_example_info``."""
    example_info = None
    if input_example is not None:
        example, example_files, example_info = _example_files(input_example)
        files.update(example_files)
        if signature is None:
            signature = _infer(predict, example)
    if signature is False:  # MLflow's way to ask for no signature, not even an inferred one
        signature = None
    return as_signature(signature), example_info


def finish(
    files: PackageFiles,
    flavors: dict[str, dict[str, Any]],
    signature: ModelSignature | None,
    example_info: dict[str, Any] | None,
    requirements: list[str],
    conda_env: Any,
    **fields: Any,
) -> tuple[PackageFiles, Model]:
    """Add the environment files and the ``MLmodel`` (with ``fields``: run_id,
    artifact_path, metadata) to a package's files."""
    files.update(_environment_files(requirements, conda_env))
    metadata = fields.pop("metadata", None)
    mlmodel = Model(
        flavors=flavors,
        signature=signature,
        saved_input_example_info=example_info,
        model_uuid=uuid.uuid4().hex,
        model_size_bytes=sum(file_size(data) for data in files.values()),
        nbtrack_version=_nbtrack_version(),
        **fields,
        **({"metadata": metadata} if metadata else {}),
    )
    files[MLMODEL_FILE] = mlmodel.to_yaml().encode("utf-8")
    return files, mlmodel


def file_size(data: bytes | Path) -> int:
    return len(data) if isinstance(data, bytes) else data.stat().st_size


def _pickle(model: Any, fmt: str) -> bytes:
    if fmt == "pickle":
        import pickle

        return pickle.dumps(model)
    import cloudpickle

    return cloudpickle.dumps(model)


def _flavors(model: Any, sklearn: bool, fmt: str, predict_fn: str) -> dict[str, dict[str, Any]]:
    if sklearn:
        import sklearn as sk

        return {
            PYFUNC_FLAVOR: {
                **environment_flavor_fields(),
                "loader_module": "mlflow.sklearn",
                "model_path": MODEL_FILE,
                "predict_fn": predict_fn,
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
            **environment_flavor_fields(),
            "loader_module": NBTRACK_LOADER,
            "data": MODEL_FILE,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "predict_fn": predict_fn,
            "serialization_format": fmt,
        }
    }


def _infer(predict: Callable[[Any], Any], example: Any) -> ModelSignature:
    """The signature of ``example`` and, if predicting on it works, of the output."""
    inputs = infer_schema(example)
    try:
        outputs = infer_schema(predict(example))
    except Exception as error:  # a model that cannot score its own example still gets saved
        warnings.warn(
            f"Could not infer the output schema by predicting on the input example "
            f"({type(error).__name__}: {error}); only the input schema is saved.",
            stacklevel=5,
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


def environment_flavor_fields() -> dict[str, Any]:
    """What every ``python_function`` flavor says about its environment."""
    return {
        "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
        "python_version": environment.python_version(),
    }


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
