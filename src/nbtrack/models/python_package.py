"""Packages of custom python models (``pyfunc.log_model(python_model=...)``), in MLflow's
layout so that ``mlflow.pyfunc.load_model`` loads them::

    MLmodel                    python_function, loader_module: mlflow.pyfunc.model
    python_model.pkl           the model object, cloudpickled
    artifacts/<name>           each of ``artifacts`` (the model reads context.artifacts)
    code/<name>                each of ``code_paths``, first on sys.path when loading
    input_example.json, ...    the example and environment files, as for every package

An artifact is a local path, a ``file:`` URI or a ``runs:/RUN/PATH`` URI; two artifacts
with the same file name are kept apart under ``artifacts/0/``, ``artifacts/1/``, ... as
MLflow does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from nbtrack.errors import InvalidParameterError
from nbtrack.models import environment
from nbtrack.models.mlmodel import PYFUNC_FLAVOR, Model
from nbtrack.models.package import PackageFiles, add_example, environment_flavor_fields, finish
from nbtrack.models.python_model import (
    ARTIFACTS_DIR,
    CODE_DIR,
    CONFIG,
    MLFLOW_LOADER,
    PYTHON_MODEL_FILE,
    LoadedPythonModel,
    PythonModelContext,
    as_python_model,
)
from nbtrack.store.artifacts import copy_tree_entries


def build_python_model_package(
    python_model: Any,
    *,
    artifacts: dict[str, str] | None = None,
    code_paths: list[str] | None = None,
    model_config: dict[str, Any] | None = None,
    input_example: Any = None,
    signature: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    conda_env: Any = None,
    streamable: bool | None = None,
    metadata: dict[str, Any] | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
) -> tuple[PackageFiles, Model]:
    """The files of a python model's package and its ``MLmodel``.

    Without a ``signature``, the model is loaded (``load_context`` with the artifacts as
    given) and predicts on the input example to infer one, as MLflow does.

    Raises
    ------
    InvalidParameterError
        If ``python_model`` is not a PythonModel or a function, cannot be pickled, or an
        artifact or code path does not exist.
    """
    import cloudpickle

    model = as_python_model(python_model)
    try:
        files: PackageFiles = {PYTHON_MODEL_FILE: cloudpickle.dumps(model)}
    except Exception as error:  # whatever the model holds that cannot be pickled
        raise InvalidParameterError(
            f"Cannot serialize python_model {type(model).__name__} with cloudpickle "
            f"({type(error).__name__}: {error}); load what it cannot pickle in load_context."
        ) from None
    artifact_conf, local_paths = _add_artifacts(files, artifacts)
    has_code = _add_code(files, code_paths)
    context = PythonModelContext(local_paths, model_config)

    def predict(example: Any) -> Any:
        model.load_context(context)
        return LoadedPythonModel(model, context).predict(example)

    signature, example_info = add_example(files, input_example, signature, predict)
    requirements = environment.requirements(
        environment.PYTHON_MODEL_REQUIREMENTS, model, pip_requirements, extra_pip_requirements
    )
    flavor: dict[str, Any] = {
        **environment_flavor_fields(),
        "cloudpickle_version": cloudpickle.__version__,
        "code": CODE_DIR if has_code else None,
        "loader_module": MLFLOW_LOADER,
        "python_model": PYTHON_MODEL_FILE,
        "streamable": _streams(model) if streamable is None else bool(streamable),
    }
    if artifact_conf:
        flavor["artifacts"] = artifact_conf
    if model_config:
        flavor[CONFIG] = model_config
    return finish(
        files,
        {PYFUNC_FLAVOR: flavor},
        signature,
        example_info,
        requirements,
        conda_env,
        metadata=metadata,
        run_id=run_id,
        artifact_path=artifact_path,
    )


def _streams(model: Any) -> bool:
    """Whether the model's class defines its own ``predict_stream`` (MLflow's test)."""
    method = getattr(type(model), "predict_stream", None)
    return method is not None and method.__qualname__ != "PythonModel.predict_stream"


# -- artifacts ---------------------------------------------------------------------------------


def _add_artifacts(
    files: PackageFiles, artifacts: dict[str, str] | None
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Add each artifact's files under ``artifacts/``; MLflow's flavor entry
    (name -> {path, uri}) and each name's local source (for ``load_context`` at save)."""
    if not artifacts:
        return {}, {}
    if not isinstance(artifacts, dict):
        raise InvalidParameterError(
            f"artifacts must be a dict of name -> path or URI, got {type(artifacts).__name__}."
        )
    sources: dict[str, Path] = {}  # uri -> local path; one copy per distinct uri
    for name, uri in artifacts.items():
        if not isinstance(name, str) or not isinstance(uri, str):
            raise InvalidParameterError(
                f"artifacts[{name!r}] = {uri!r}: names and paths or URIs are strings."
            )
        sources.setdefault(uri, _local_source(name, uri))
    roots = _artifact_roots({uri: path.name for uri, path in sources.items()})
    for uri, source in sources.items():
        target = f"{ARTIFACTS_DIR}/{roots[uri]}"
        if source.is_dir():
            files.update({f"{target}/{rel}": path for path, rel in copy_tree_entries(source)})
        else:
            files[target] = source
    conf = {
        name: {"path": f"{ARTIFACTS_DIR}/{roots[uri]}", "uri": uri}
        for name, uri in artifacts.items()
    }
    local = {name: str(sources[uri].resolve()) for name, uri in artifacts.items()}
    return conf, local


def _local_source(name: str, uri: str) -> Path:
    """The local file or folder an artifact URI names."""
    parsed = urlparse(uri)
    if uri.startswith("runs:"):
        from nbtrack.models.source import split_runs_uri
        from nbtrack.tracking.fluent import current_store

        run_id, path = split_runs_uri(uri)
        source = current_store().artifact_dir(run_id) / path
    elif parsed.scheme == "file":
        source = Path(unquote(parsed.netloc + parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise InvalidParameterError(
            f"artifacts[{name!r}] = {uri!r}: use a local path, a file: URI or runs:/RUN/PATH."
        )
    else:
        source = Path(uri).expanduser()
    if not source.exists():
        raise InvalidParameterError(f"artifacts[{name!r}] = {uri!r}: no such file or folder.")
    return source


def _artifact_roots(names: dict[str, str]) -> dict[str, str]:
    """Where each artifact goes under ``artifacts/``: its own name, unless another artifact
    has the same name; then each of those goes under the next free number (MLflow's rule)."""
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    occupied = {name for name, count in counts.items() if count == 1}
    roots, namespace = {}, 0
    for uri, name in names.items():
        if counts[name] == 1:
            roots[uri] = name
            continue
        while str(namespace) in occupied:
            namespace += 1
        occupied.add(str(namespace))
        roots[uri] = f"{namespace}/{name}"
        namespace += 1
    return roots


# -- code ------------------------------------------------------------------------------------


def _add_code(files: PackageFiles, code_paths: list[str] | None) -> bool:
    """Add each code file or folder under ``code/`` (``__pycache__`` left out)."""
    if code_paths is None:
        return False
    if not isinstance(code_paths, (list, tuple)):
        raise InvalidParameterError(
            f"code_paths must be a list of paths, got {type(code_paths).__name__}."
        )
    for entry in code_paths:
        source = Path(os.fspath(entry)).expanduser()
        if not source.exists():
            raise InvalidParameterError(f"code_paths: {entry!r} does not exist.")
        target = f"{CODE_DIR}/{source.resolve().name}"
        if source.is_dir():
            files.update(
                {
                    f"{target}/{rel}": path
                    for path, rel in copy_tree_entries(source)
                    if "__pycache__" not in rel.split("/")
                }
            )
        else:
            files[target] = source
    return True
