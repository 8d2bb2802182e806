"""Logging model packages to runs and loading them back, verified, from any model URI."""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nbtrack.errors import InvalidParameterError
from nbtrack.models.integrity import VerifiedPackage
from nbtrack.models.mlmodel import MLMODEL_FILE, PYFUNC_FLAVOR, SKLEARN_FLAVOR, Model
from nbtrack.models.package import NBTRACK_LOADER, PackageFiles, build_package
from nbtrack.models.pyfunc_model import PyFuncModel
from nbtrack.models.python_model import MLFLOW_LOADER
from nbtrack.models.signature import ModelSignature
from nbtrack.models.source import resolve


@dataclass(frozen=True)
class ModelInfo:
    """What ``log_model`` returns (MLflow's ``ModelInfo`` fields, plus ``files``).

    ``files`` maps each package file to the SHA-256 recorded in the run's journal.
    """

    artifact_path: str
    flavors: dict[str, Any]
    model_uri: str
    model_uuid: str | None
    run_id: str
    saved_input_example_info: dict[str, Any] | None
    signature: ModelSignature | None
    utc_time_created: str
    files: dict[str, str] = field(default_factory=dict)
    registered_model_version: int | None = None
    metadata: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.artifact_path

    def __repr__(self) -> str:
        registered = self.registered_model_version
        return (
            f"<ModelInfo: model_uri={self.model_uri!r}, flavors={sorted(self.flavors)}"
            + (f", registered_model_version={registered}" if registered is not None else "")
            + ">"
        )


def log_model(
    model: Any,
    name: str = "model",
    input_example: Any = None,
    signature: Any = None,
    *,
    registered_model_name: str | None = None,
    serialization_format: str | None = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    conda_env: Any = None,
    pyfunc_predict_fn: str = "predict",
    metadata: dict[str, Any] | None = None,
    reason: str | None = None,
) -> ModelInfo:
    """Save ``model`` as an MLflow-format package in the active run's artifacts.

    Parameters
    ----------
    model
        A scikit-learn estimator (``sklearn`` flavor) or any object with ``predict``
        (packaged behind nbtrack's loader module).
    name
        The package's artifact path in the run, e.g. ``"model"``.
    input_example
        A pandas DataFrame or numpy array: saved with the package and, without a
        ``signature``, used to infer one (the output schema from predicting on it).
    signature
        A :class:`~nbtrack.models.ModelSignature` (or MLflow's) to save instead.
    registered_model_name
        Also register the package as a new version of this model.

    Returns
    -------
    ModelInfo
        With ``model_uri`` (``runs:/<run_id>/<name>``) and the SHA-256 of each file,
        which the run's journal records too.

    Raises
    ------
    InvalidParameterError
        If ``name`` is not a relative path, the run already has artifacts there, or the
        model or example cannot be packaged. Nothing is written then.
    """

    def build(run_id: str, artifact_path: str) -> tuple[PackageFiles, Model]:
        return build_package(
            model,
            input_example=input_example,
            signature=signature,
            serialization_format=serialization_format,
            pip_requirements=pip_requirements,
            extra_pip_requirements=extra_pip_requirements,
            conda_env=conda_env,
            predict_fn=pyfunc_predict_fn,
            metadata=metadata,
            run_id=run_id,
            artifact_path=artifact_path,
        )

    return log_package(build, name, registered_model_name, reason, metadata)


def log_package(
    build: Callable[[str, str], tuple[PackageFiles, Model]],
    name: str,
    registered_model_name: str | None = None,
    reason: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> ModelInfo:
    """Store the package ``build(run_id, artifact_path)`` makes at ``name`` in the run to
    log to, recording each file's SHA-256; register it if asked. Nothing is stored if the
    run already has artifacts there or ``build`` raises."""
    from nbtrack.store.artifacts import relative_path
    from nbtrack.tracking import fluent
    from nbtrack.tracking.artifacts import files_under

    artifact_path = relative_path(name, "name")
    store, run_id = fluent.default_session().target(None)
    if files_under(store, run_id, artifact_path):
        raise InvalidParameterError(
            f"Run {run_id} already has artifacts at {artifact_path!r}; log the model under "
            "another name (a package is never overwritten)."
        )
    files, mlmodel = build(run_id, artifact_path)
    sums = {
        n: store.add_artifact(run_id, f"{artifact_path}/{n}", data) for n, data in files.items()
    }
    info = ModelInfo(
        artifact_path=artifact_path,
        flavors=mlmodel.flavors,
        model_uri=f"runs:/{run_id}/{artifact_path}",
        model_uuid=mlmodel.model_uuid,
        run_id=run_id,
        saved_input_example_info=mlmodel.saved_input_example_info,
        signature=mlmodel.signature,
        utc_time_created=mlmodel.utc_time_created,
        files=sums,
        metadata=metadata,
    )
    if registered_model_name is not None:
        from nbtrack.models import registry_link

        version = registry_link.register(info.model_uri, registered_model_name, reason)
        info = replace(info, registered_model_version=version.version)
    return info


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    input_example: Any = None,
    signature: Any = None,
    **options: Any,
) -> Model:
    """Write a package to a local folder (which must not exist yet); returns its ``MLmodel``."""
    target = writable_folder(path)
    files, mlmodel = build_package(
        model, input_example=input_example, signature=signature, **options
    )
    write_package(files, target)
    return mlmodel


def writable_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder to save a package in; it must not exist yet."""
    target = Path(path)
    if target.exists():
        raise InvalidParameterError(f"Path '{target}' already exists; save_model never overwrites.")
    return target


def write_package(files: PackageFiles, target: Path) -> None:
    """Write a package's files into a new folder."""
    target.mkdir(parents=True)
    for file_name, data in files.items():
        destination = target / file_name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            destination.write_bytes(data)
        else:
            shutil.copyfile(data, destination)


def load_model(
    model_uri: str,
    suppress_warnings: bool = False,
    dst_path: str | os.PathLike[str] | None = None,
    model_config: Any = None,
) -> PyFuncModel:
    """Load any package as a :class:`PyFuncModel` after verifying its recorded checksums.

    Parameters
    ----------
    model_uri
        ``runs:/RUN/PATH``, ``models:/NAME/VERSION``, ``models:/NAME/STAGE``,
        ``models:/NAME@ALIAS``, ``models:/NAME/latest``, or a local folder.
    dst_path
        Also copy the verified package there.

    Raises
    ------
    ModelIntegrityError
        If a file was changed, removed or added since the model was logged; nothing
        was unpickled.
    NotFoundError
        For an unknown run, path, model name, version, stage or alias.
    """
    package, meta = _open(model_uri, dst_path)
    return PyFuncModel(meta, _load_implementation(package, meta, model_config), model_uri)


def load_native(model_uri: str, flavor: str, dst_path: str | os.PathLike[str] | None = None) -> Any:
    """The model object of a package with ``flavor`` (e.g. the sklearn estimator itself)."""
    package, meta = _open(model_uri, dst_path)
    if flavor not in meta.flavors:
        raise InvalidParameterError(
            f"Model {model_uri} has no {flavor!r} flavor (it has "
            f"{', '.join(sorted(meta.flavors))}); load it with nbtrack.pyfunc.load_model instead."
        )
    return _load_implementation(package, meta)


def _open(uri: str, dst_path: str | os.PathLike[str] | None) -> tuple[VerifiedPackage, Model]:
    source = resolve(uri)
    package = VerifiedPackage(source.path, source.files, uri)
    meta = Model.from_yaml(package.read(MLMODEL_FILE), f"{uri}/{MLMODEL_FILE}")
    if dst_path is not None:
        shutil.copytree(source.path, Path(dst_path), dirs_exist_ok=True)
    return package, meta


def _load_implementation(
    package: VerifiedPackage, meta: Model, model_config: dict[str, Any] | None = None
) -> Any:
    sklearn = meta.flavors.get(SKLEARN_FLAVOR)
    pyfunc = meta.flavors.get(PYFUNC_FLAVOR)
    if pyfunc and pyfunc.get("loader_module") == MLFLOW_LOADER:
        from nbtrack.models import python_model

        return python_model.load(package, pyfunc, model_config)
    if sklearn and sklearn.get("serialization_format", "pickle") in ("pickle", "cloudpickle"):
        return _unpickle(package.read(sklearn["pickled_model"]), sklearn["serialization_format"])
    if pyfunc and pyfunc.get("loader_module") == NBTRACK_LOADER:
        return _unpickle(package.read(pyfunc["data"]), pyfunc.get("serialization_format"))
    if pyfunc:
        # A package another tool wrote (an MLflow flavor nbtrack does not read itself):
        # its files were verified above; its own loader module reads them.
        loader = importlib.import_module(pyfunc["loader_module"])
        data = package.path / pyfunc["data"] if "data" in pyfunc else package.path
        return loader._load_pyfunc(str(data))
    raise InvalidParameterError(
        f"Model {package.uri} has no python_function flavor (flavors: "
        f"{', '.join(sorted(meta.flavors))}), so nbtrack cannot load it."
    )


def _unpickle(data: bytes, fmt: str | None) -> Any:
    if fmt == "pickle":
        import pickle

        return pickle.loads(data)
    import cloudpickle

    return cloudpickle.loads(data)
