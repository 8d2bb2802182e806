"""Custom Python models, as MLflow's ``mlflow.pyfunc.PythonModel``: the class you
subclass, the context it loads from, and the loaded model that calls its ``predict``.

::

    class AddN(nbtrack.pyfunc.PythonModel):
        def load_context(self, context):
            self.n = float(Path(context.artifacts["n"]).read_text())

        def predict(self, context, model_input, params=None):
            return model_input + self.n

    nbtrack.pyfunc.log_model(name="model", python_model=AddN(), artifacts={"n": "n.txt"})

The package is MLflow's (``python_model.pkl``, ``loader_module: mlflow.pyfunc.model``),
so ``mlflow.pyfunc.load_model`` loads it, and nbtrack loads MLflow's.
"""

from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from nbtrack.models.integrity import VerifiedPackage

MLFLOW_LOADER = "mlflow.pyfunc.model"  # MLflow's loader module for these packages
PYTHON_MODEL_FILE = "python_model.pkl"
ARTIFACTS_DIR = "artifacts"
CODE_DIR = "code"
CONFIG = "config"  # the flavor's model_config, as MLflow names it


class TypeHints(NamedTuple):
    """What MLflow's loader reads from ``predict_type_hints``: none, so it passes the
    input through unconverted."""

    input: Any = None
    output: Any = None


class PythonModel:
    """Subclass this and define ``predict`` (and ``load_context`` to read artifacts).

    ``predict(self, context, model_input, params=None)`` or, without the context,
    ``predict(self, model_input, params=None)``: both are called as MLflow calls them.
    """

    def load_context(self, context: PythonModelContext) -> None:
        """Load what ``predict`` needs from ``context.artifacts`` (name -> local path);
        called once, when the model is loaded."""

    def predict(self, context: PythonModelContext, model_input: Any, params: Any = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define predict().")

    def predict_stream(
        self, context: PythonModelContext, model_input: Any, params: Any = None
    ) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not stream predictions.")

    @property
    def predict_type_hints(self) -> TypeHints:
        return TypeHints()


class FunctionModel(PythonModel):
    """A plain function as a python model (MLflow accepts ``python_model=predict_fn``)."""

    def __init__(self, func: Any) -> None:
        self.func = func

    def predict(self, model_input: Any, params: Any = None) -> Any:
        return self.func(model_input)


class PythonModelContext:
    """The artifacts (name -> absolute local path) and model config a model loads from."""

    def __init__(self, artifacts: dict[str, str], model_config: dict[str, Any] | None) -> None:
        self._artifacts = artifacts
        self._model_config = model_config

    @property
    def artifacts(self) -> dict[str, str]:
        return self._artifacts

    @property
    def model_config(self) -> dict[str, Any] | None:
        return self._model_config


class LoadedPythonModel:
    """A python model with its context, behind ``predict(model_input, params=None)``."""

    def __init__(self, python_model: Any, context: PythonModelContext) -> None:
        self.python_model = python_model
        self.context = context

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self._call(self.python_model.predict, model_input, params)

    def predict_stream(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self._call(self.python_model.predict_stream, model_input, params)

    def _call(self, method: Any, model_input: Any, params: dict[str, Any] | None) -> Any:
        parameters = inspect.signature(method).parameters
        kwargs = {"params": params} if "params" in parameters else {}
        if takes_context(parameters):
            return method(self.context, model_input, **kwargs)
        return method(model_input, **kwargs)


def takes_context(parameters: Any) -> bool:
    """MLflow's rule: ``predict`` takes the context if it has a parameter named so, or two
    parameters besides ``self`` and ``params``."""
    names = [p for p in parameters if p not in ("self", "params")]
    return "context" in parameters or len(names) == 2


def as_python_model(python_model: Any) -> Any:
    """A python model from what ``log_model(python_model=...)`` accepts: an instance of a
    PythonModel (nbtrack's or MLflow's) or a function of one argument."""
    from nbtrack.errors import InvalidParameterError

    if callable(getattr(python_model, "predict", None)) and hasattr(python_model, "load_context"):
        return python_model
    if callable(python_model) and not isinstance(python_model, type):
        return FunctionModel(python_model)
    raise InvalidParameterError(
        f"python_model must be a PythonModel instance (a subclass of nbtrack.pyfunc.PythonModel "
        f"with predict) or a function of one argument; got {type(python_model).__name__}."
    )


def load(
    package: VerifiedPackage, conf: dict[str, Any], model_config: dict[str, Any] | None = None
) -> LoadedPythonModel:
    """Load a verified package with ``loader_module: mlflow.pyfunc.model``, as MLflow does:
    its code folder goes first on ``sys.path``, the model is unpickled and its
    ``load_context`` called with the package's artifacts and model config."""
    import cloudpickle

    if conf.get("code"):
        sys.path.insert(0, str(package.path / conf["code"]))
    python_model = cloudpickle.loads(package.read(conf.get("python_model", PYTHON_MODEL_FILE)))
    artifacts = {
        name: str(package.path / info["path"]) for name, info in conf.get("artifacts", {}).items()
    }
    context = PythonModelContext(artifacts, effective_config(conf.get(CONFIG), model_config))
    python_model.load_context(context)
    return LoadedPythonModel(python_model, context)


def effective_config(
    saved: dict[str, Any] | None, overrides: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The saved model config with ``overrides`` (and ``$MLFLOW_PYFUNC_INFERENCE_CONFIG``,
    JSON) applied, as MLflow applies them: only to keys the saved config has."""
    import json
    import os
    import warnings

    changes = dict(json.loads(os.environ.get("MLFLOW_PYFUNC_INFERENCE_CONFIG") or "{}"))
    changes.update(overrides or {})
    ignored = sorted(set(changes) - set(saved or {}))
    if ignored:
        warnings.warn(
            f"model_config keys {', '.join(ignored)} are ignored: the model was saved without "
            "them (pass model_config= when logging it to allow them).",
            stacklevel=4,
        )
    if not saved:
        return saved
    return {**saved, **{k: v for k, v in changes.items() if k in saved}}
