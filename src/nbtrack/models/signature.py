"""Model signatures in MLflow's format: column and tensor specs, inferred from example data.

A signature is what the ``signature`` section of an ``MLmodel`` file holds: the input and
output schemas as JSON strings (``[{"type": "double", "name": "age", "required": true}]``
for columns, ``[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]``
for arrays), so MLflow reads nbtrack's signatures and nbtrack reads MLflow's.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from nbtrack.errors import InvalidParameterError

# MLflow's column types and the numpy dtype each stands for.
COLUMN_TYPES = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "object",
    "binary": "object",
    "datetime": "datetime64[ns]",
}


class ColSpec(NamedTuple):
    """One column of a column schema: an MLflow type name, a name, and whether it is required."""

    type: str
    name: str | None = None
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type}
        if self.name is not None:
            spec["name"] = self.name
        spec["required"] = self.required
        return spec


class TensorSpec(NamedTuple):
    """An array input or output: a numpy dtype name and a shape (-1 for any length)."""

    dtype: str
    shape: tuple[int, ...]
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "type": "tensor",
            "tensor-spec": {"dtype": self.dtype, "shape": list(self.shape)},
        }
        if self.name is not None:
            spec["name"] = self.name
        return spec


class Schema:
    """A list of :class:`ColSpec` or of :class:`TensorSpec` (never both)."""

    def __init__(self, inputs: list[ColSpec] | list[TensorSpec]) -> None:
        inputs = list(inputs)
        kinds = {type(spec) for spec in inputs}
        if len(kinds) > 1:
            raise InvalidParameterError(
                "A schema holds column specs or tensor specs, not both; got "
                + ", ".join(sorted(k.__name__ for k in kinds))
                + "."
            )
        self.inputs = inputs

    @property
    def is_tensor_spec(self) -> bool:
        return bool(self.inputs) and isinstance(self.inputs[0], TensorSpec)

    def input_names(self) -> list[str | None]:
        return [spec.name for spec in self.inputs]

    def has_input_names(self) -> bool:
        return bool(self.inputs) and all(spec.name is not None for spec in self.inputs)

    def to_dict(self) -> list[dict[str, Any]]:
        return [spec.to_dict() for spec in self.inputs]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Schema:
        return cls([_spec_from_dict(item) for item in json.loads(text)])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.inputs == other.inputs

    def __repr__(self) -> str:
        return "[" + ", ".join(_describe(spec) for spec in self.inputs) + "]"


def _spec_from_dict(item: dict[str, Any]) -> ColSpec | TensorSpec:
    if item.get("type") == "tensor":
        tensor = item["tensor-spec"]
        return TensorSpec(tensor["dtype"], tuple(tensor["shape"]), item.get("name"))
    return ColSpec(item["type"], item.get("name"), item.get("required", True))


def _describe(spec: ColSpec | TensorSpec) -> str:
    if isinstance(spec, TensorSpec):
        where = f"{spec.name!r}: " if spec.name else ""
        return f"{where}Tensor({spec.dtype!r}, {spec.shape})"
    where = f"{spec.name!r}: " if spec.name else ""
    return f"{where}{spec.type}" + ("" if spec.required else " (optional)")


class ModelSignature:
    """A model's input and output schemas (and inference params), as MLflow's ``ModelSignature``.

    Parameters
    ----------
    inputs, outputs : Schema, optional
        What the model takes and returns.
    params : list of dict, optional
        Inference parameters in MLflow's ``ParamSchema`` JSON form
        (``{"name", "type", "default", "shape"}`` each).
    """

    def __init__(
        self,
        inputs: Schema | None = None,
        outputs: Schema | None = None,
        params: list[dict[str, Any]] | None = None,
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.params = params

    def to_dict(self) -> dict[str, Any]:
        """The ``MLmodel`` form: each schema as a JSON string (None when absent)."""
        return {
            "inputs": self.inputs.to_json() if self.inputs else None,
            "outputs": self.outputs.to_json() if self.outputs else None,
            "params": json.dumps(self.params) if self.params else None,
        }

    @classmethod
    def from_dict(cls, signature: dict[str, Any]) -> ModelSignature:
        inputs, outputs = signature.get("inputs"), signature.get("outputs")
        params = signature.get("params")
        return cls(
            Schema.from_json(inputs) if inputs else None,
            Schema.from_json(outputs) if outputs else None,
            json.loads(params) if params else None,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelSignature) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"inputs:\n  {self.inputs!r}\noutputs:\n  {self.outputs!r}\nparams:\n  {self.params!r}"
        )


def as_signature(value: Any) -> ModelSignature | None:
    """An nbtrack signature from ours, MLflow's (anything with ``to_dict``), or a dict."""
    if value is None or isinstance(value, ModelSignature):
        return value
    if isinstance(value, dict):
        return ModelSignature.from_dict(value)
    if callable(getattr(value, "to_dict", None)):
        return ModelSignature.from_dict(value.to_dict())
    raise InvalidParameterError(
        f"signature={value!r} is not a model signature; build one with "
        "nbtrack.models.infer_signature(model_input, model_output)."
    )


def infer_signature(
    model_input: Any = None, model_output: Any = None, params: dict[str, Any] | None = None
) -> ModelSignature:
    """Infer a signature from example input and output data, as MLflow's ``infer_signature``.

    Parameters
    ----------
    model_input, model_output : DataFrame, Series, ndarray, list or dict of arrays, optional
        A pandas DataFrame gives one column spec per column (named, typed, required when it
        has no missing values); a numpy array gives a tensor spec whose first dimension is
        variable (-1); a dict of arrays gives named tensor specs.
    params : dict, optional
        Inference parameters with their default values (scalars).

    Returns
    -------
    ModelSignature

    Raises
    ------
    InvalidParameterError
        If the data is of a type, or holds values, no schema can describe.
    """
    return ModelSignature(
        infer_schema(model_input) if model_input is not None else None,
        infer_schema(model_output) if model_output is not None else None,
        _param_specs(params) if params else None,
    )


def infer_schema(data: Any) -> Schema:
    """The schema of one example: column specs for frames and series, tensor specs for arrays."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return Schema([_column_spec(data[c], str(c)) for c in data.columns])
    if isinstance(data, pd.Series):
        return Schema([_column_spec(data, None if data.name is None else str(data.name))])
    if isinstance(data, dict) and all(isinstance(v, np.ndarray) for v in data.values()):
        return Schema([_tensor_spec(array, str(name)) for name, array in data.items()])
    if isinstance(data, dict):
        return infer_schema(
            pd.DataFrame({k: v if _is_listlike(v) else [v] for k, v in data.items()})
        )
    if isinstance(data, (list, tuple)):
        data = np.asarray(data)
    if isinstance(data, np.ndarray):
        return Schema([_tensor_spec(data, None)])
    raise InvalidParameterError(
        f"Cannot infer a schema from {type(data).__name__}: use a pandas DataFrame or Series, "
        "a numpy array, a list, or a dict of arrays."
    )


def _is_listlike(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or hasattr(value, "__array__")


def _tensor_spec(array: Any, name: str | None) -> TensorSpec:
    if array.dtype.kind == "O":
        raise InvalidParameterError(
            f"Cannot infer a tensor spec{f' for {name!r}' if name else ''} from an object array; "
            "convert it to a numeric, string or boolean dtype first."
        )
    dtype = "str" if array.dtype.kind == "U" else str(array.dtype)
    return TensorSpec(dtype, (-1, *array.shape[1:]), name)


def _column_spec(column: Any, name: str | None) -> ColSpec:
    required = not bool(column.isna().any())
    return ColSpec(column_type(column, name), name, required)


def column_type(column: Any, name: str | None) -> str:
    """MLflow's type name for a pandas column (raises for types it has none for)."""
    import pandas as pd

    dtype = column.dtype
    if dtype.kind == "O":
        dtype = column.infer_objects().dtype
    if isinstance(dtype, pd.StringDtype) or dtype.kind in "OUS":
        values = column.dropna()
        if all(isinstance(v, str) for v in values):
            return "string"
        if all(isinstance(v, (bytes, bytearray)) for v in values):
            return "binary"
        kinds = sorted({type(v).__name__ for v in values})
        raise InvalidParameterError(
            f"Column {name!r} holds {', '.join(kinds)} values; a signature column must hold "
            "one type (numbers, booleans, strings, bytes or datetimes)."
        )
    found = numpy_type(dtype)
    if found is None:
        raise InvalidParameterError(
            f"Column {name!r} has dtype {dtype}, which no MLflow type fits."
        )
    return found


def numpy_type(dtype: Any) -> str | None:
    """MLflow's type name for a numpy dtype, by kind and size as MLflow maps them."""
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return "boolean"
    if kind == "i":
        return "integer" if size <= 4 else "long"
    if kind == "u":
        return "integer" if size < 4 else ("long" if size < 8 else None)
    if kind == "f":
        return "float" if size <= 4 else "double"
    if kind == "M":
        return "datetime"
    return None


_PARAM_TYPES = ((bool, "boolean"), (int, "long"), (float, "double"), (str, "string"))


def _param_specs(params: dict[str, Any]) -> list[dict[str, Any]]:
    specs = []
    for name, default in params.items():
        kind = next((label for python, label in _PARAM_TYPES if isinstance(default, python)), None)
        if kind is None:
            raise InvalidParameterError(
                f"Param {name!r} has default {default!r}; inference params are booleans, "
                "integers, floats or strings."
            )
        specs.append({"name": name, "type": kind, "default": default, "shape": None})
    return specs
