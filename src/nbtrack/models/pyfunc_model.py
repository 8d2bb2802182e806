"""A loaded model behind one ``predict``: the input is checked against the signature first."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

from nbtrack.models.enforcement import enforce_schema
from nbtrack.models.mlmodel import PYFUNC_FLAVOR, Model


class PyFuncModel:
    """What ``nbtrack.load_model`` and ``nbtrack.pyfunc.load_model`` return (MLflow's name).

    ``predict(data)`` raises :class:`~nbtrack.models.SchemaEnforcementError` when ``data``
    does not fit the model's input signature, before the model sees it.
    """

    def __init__(self, model_meta: Model, model_impl: Any, uri: str) -> None:
        self._model_meta = model_meta
        self._model_impl = model_impl
        self.uri = uri
        conf = model_meta.flavors.get(PYFUNC_FLAVOR, {})
        self._predict_fn = getattr(model_impl, conf.get("predict_fn", "predict"))

    @property
    def metadata(self) -> Model:
        """The package's ``MLmodel``: flavors, signature, run id."""
        return self._model_meta

    @property
    def loader_module(self) -> str | None:
        return self._model_meta.flavors.get(PYFUNC_FLAVOR, {}).get("loader_module")

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Check ``data`` against the input signature (if any), then predict.

        ``params`` reach the model as MLflow passes them: only those the signature
        declares (the others are ignored with a warning), defaults filled in, and only to
        a predict function that takes ``params``.
        """
        schema = self._model_meta.get_input_schema()
        if schema is not None:
            data = enforce_schema(data, schema)
        params = self._declared(params)
        accepted = inspect.signature(self._predict_fn).parameters.get("params")
        if accepted is not None and accepted.kind != inspect.Parameter.VAR_KEYWORD:
            return self._predict_fn(data, params=params)
        return self._predict_fn(data)

    def _declared(self, params: dict[str, Any] | None) -> dict[str, Any] | None:
        signature = self._model_meta.signature
        specs = signature.params if signature is not None else None
        if not specs:
            if params:
                warnings.warn(
                    f"Ignoring params {sorted(params)}: the model's signature declares none "
                    "(log it with infer_signature(..., params=...) to pass them).",
                    stacklevel=3,
                )
                return {}
            return params
        params = dict(params or {})
        names = {spec["name"] for spec in specs}
        if set(params) - names:
            warnings.warn(
                f"Ignoring params {sorted(set(params) - names)}: the model's signature "
                f"declares {sorted(names)}.",
                stacklevel=3,
            )
        return {spec["name"]: params.get(spec["name"], spec.get("default")) for spec in specs}

    def get_raw_model(self) -> Any:
        """The model object itself (the estimator, or your object with ``predict``)."""
        return self._model_impl

    def unwrap_python_model(self) -> Any:
        """The python model object of a custom-model package (your PythonModel subclass);
        for other packages, the model object itself."""
        return getattr(self._model_impl, "python_model", self._model_impl)

    def __repr__(self) -> str:
        flavors = ", ".join(sorted(self._model_meta.flavors))
        return f"nbtrack.pyfunc.loaded_model:\n  uri: {self.uri}\n  flavors: {flavors}"
