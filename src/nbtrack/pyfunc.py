"""``mlflow.pyfunc``'s place: custom python models, and any model package behind one
``predict``.

``import nbtrack as mlflow`` code runs unchanged::

    class AddN(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            self.n = float(open(context.artifacts["n"]).read())

        def predict(self, context, model_input, params=None):
            return model_input + self.n

    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=AddN(), artifacts={"n": "n.txt"})
    mlflow.pyfunc.load_model(info.model_uri).predict(df)   # checksums verified first

The package is MLflow's, so real ``mlflow.pyfunc.load_model`` loads it as well.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from nbtrack.errors import InvalidParameterError
from nbtrack.models.api import ModelInfo, load_model, log_package, writable_folder, write_package
from nbtrack.models.mlmodel import PYFUNC_FLAVOR, Model
from nbtrack.models.package import PackageFiles
from nbtrack.models.pyfunc_model import PyFuncModel
from nbtrack.models.python_model import PythonModel, PythonModelContext, as_python_model
from nbtrack.models.python_package import build_python_model_package

FLAVOR_NAME = PYFUNC_FLAVOR

__all__ = [
    "FLAVOR_NAME",
    "PyFuncModel",
    "PythonModel",
    "PythonModelContext",
    "load_model",
    "log_model",
    "save_model",
]


def log_model(
    artifact_path: str | None = None,
    loader_module: str | None = None,
    data_path: str | None = None,
    code_paths: list[str] | None = None,
    infer_code_paths: bool = False,
    conda_env: Any = None,
    python_model: Any = None,
    artifacts: dict[str, str] | None = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: int = 300,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    streamable: bool | None = None,
    *,
    name: str | None = None,
    reason: str | None = None,
    **unsupported: Any,
) -> ModelInfo:
    """Log a custom python model to the active run, as MLflow's ``mlflow.pyfunc.log_model``.

    Parameters
    ----------
    name
        The package's artifact path in the run (``artifact_path``, MLflow's older name,
        works too); ``"model"`` by default.
    python_model
        An instance of a :class:`PythonModel` subclass (nbtrack's or MLflow's), or a
        function of one argument; cloudpickled into ``python_model.pkl``.
    artifacts
        Name -> local path, ``file:`` or ``runs:/`` URI; copied into the package, and
        ``context.artifacts[name]`` is the copy's local path when the model is loaded.
    code_paths
        Files or folders copied into the package's ``code/``, first on ``sys.path`` when
        the model is loaded.
    model_config
        Handed to ``load_context`` as ``context.model_config``.
    signature, input_example, pip_requirements, extra_pip_requirements, conda_env, metadata
        As for every package (:func:`nbtrack.log_model`).
    registered_model_name, reason
        Also register the package as the next version of this model, saying why.

    Raises
    ------
    InvalidParameterError
        For no ``python_model``, MLflow's ``loader_module``/``data_path`` form, or what
        :func:`save_model` refuses. Nothing is stored then.
    """
    _check_supported(python_model, loader_module, data_path, infer_code_paths, unsupported)

    def build(run_id: str, path: str) -> tuple[PackageFiles, Model]:
        return build_python_model_package(
            python_model,
            artifacts=artifacts,
            code_paths=code_paths,
            model_config=model_config,
            input_example=input_example,
            signature=signature,
            pip_requirements=pip_requirements,
            extra_pip_requirements=extra_pip_requirements,
            conda_env=conda_env,
            streamable=streamable,
            metadata=metadata,
            run_id=run_id,
            artifact_path=path,
        )

    package_name = name or artifact_path or "model"
    return log_package(build, package_name, registered_model_name, reason, metadata)


def save_model(
    path: str | os.PathLike[str],
    loader_module: str | None = None,
    data_path: str | None = None,
    code_paths: list[str] | None = None,
    infer_code_paths: bool = False,
    conda_env: Any = None,
    mlflow_model: Any = None,
    python_model: Any = None,
    artifacts: dict[str, str] | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    streamable: bool | None = None,
    **unsupported: Any,
) -> Model:
    """Write a custom python model's package to a new local folder (see :func:`log_model`);
    returns its ``MLmodel``.

    Raises
    ------
    InvalidParameterError
        If ``path`` exists, or as :func:`log_model`. Nothing is written then.
    """
    _check_supported(python_model, loader_module, data_path, infer_code_paths, unsupported)
    target = writable_folder(path)
    files, mlmodel = build_python_model_package(
        python_model,
        artifacts=artifacts,
        code_paths=code_paths,
        model_config=model_config,
        input_example=input_example,
        signature=signature,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        conda_env=conda_env,
        streamable=streamable,
        metadata=metadata,
    )
    write_package(files, target)
    return mlmodel


def _check_supported(
    python_model: Any,
    loader_module: str | None,
    data_path: str | None,
    infer_code_paths: bool,
    unsupported: dict[str, Any],
) -> None:
    if loader_module is not None or data_path is not None:
        raise InvalidParameterError(
            "nbtrack.pyfunc packages python_model= objects; MLflow's loader_module/data_path "
            "form is not supported. Wrap your loader in a PythonModel whose load_context "
            "reads the data from context.artifacts."
        )
    if python_model is None:
        raise InvalidParameterError(
            "Pass python_model= (a PythonModel instance, or a function of one argument)."
        )
    as_python_model(python_model)  # refused before a run is started for it
    if infer_code_paths:
        warnings.warn(
            "infer_code_paths is not supported by nbtrack; list code_paths instead.",
            stacklevel=3,
        )
    if unsupported:
        warnings.warn(f"nbtrack.pyfunc ignores {', '.join(sorted(unsupported))}.", stacklevel=3)
