"""Checking prediction input against a model's input schema, with MLflow's conversion rules.

Allowed without loss, as MLflow allows them: a smaller int or float column to a larger
one of its kind, an int column of up to 32 bits to double, object columns to strings.
Everything else that does not match is an error naming the column, what it got and
what the signature expects; nothing is silently coerced.
"""

from __future__ import annotations

from typing import Any

from nbtrack.errors import InvalidParameterError
from nbtrack.models.signature import COLUMN_TYPES, ColSpec, Schema, TensorSpec


class SchemaEnforcementError(InvalidParameterError):
    """Prediction input that does not fit the model's signature."""


def enforce_schema(data: Any, schema: Schema) -> Any:
    """Return ``data`` checked (and safely converted) against ``schema``, or raise.

    Raises
    ------
    SchemaEnforcementError
        Naming the column or array that does not fit and the rule it broke.
    """
    if not schema.inputs:
        return data
    if schema.is_tensor_spec:
        return _enforce_tensors(data, schema)
    return _enforce_columns(data, schema)


def _enforce_columns(data: Any, schema: Schema) -> Any:
    import numpy as np
    import pandas as pd

    specs: list[ColSpec] = schema.inputs  # type: ignore[assignment]
    if isinstance(data, dict):
        data = pd.DataFrame(data)
    elif isinstance(data, pd.Series):
        data = data.to_frame()
    elif isinstance(data, (list, np.ndarray)) and not schema.has_input_names():
        data = pd.DataFrame(np.asarray(data))
    if not isinstance(data, pd.DataFrame):
        names = [s.name for s in specs]
        raise SchemaEnforcementError(
            f"This model's signature names columns {names}, so predict() needs a pandas "
            f"DataFrame (or a dict) with them; got {type(data).__name__}."
        )
    if not schema.has_input_names():
        return _enforce_unnamed(data, specs)
    missing = [s.name for s in specs if s.required and s.name not in data.columns]
    if missing:
        raise SchemaEnforcementError(
            f"Input is missing required column(s) {missing}; the signature expects "
            f"{[s.name for s in specs]} (got {[str(c) for c in data.columns]})."
        )
    present = [s for s in specs if s.name in data.columns]
    columns = {s.name: _column(data[s.name], s.type, repr(s.name)) for s in present}
    return pd.DataFrame(columns, index=data.index)


def _enforce_unnamed(data: Any, specs: list[ColSpec]) -> Any:
    import pandas as pd

    if len(data.columns) != len(specs):
        raise SchemaEnforcementError(
            f"Input has {len(data.columns)} column(s); the signature expects {len(specs)}."
        )
    columns = {
        name: _column(data[name], spec.type, f"#{i}")
        for i, (name, spec) in enumerate(zip(data.columns, specs, strict=True))
    }
    return pd.DataFrame(columns, index=data.index)


def _column(values: Any, expected: str, label: str) -> Any:
    import numpy as np
    import pandas as pd

    if expected in ("string", "binary"):
        if values.dtype.kind in "OSU" or isinstance(values.dtype, pd.StringDtype):
            return values
        raise _mismatch(label, values.dtype, expected)
    if values.dtype.kind == "O":
        values = values.infer_objects()
    target = np.dtype(COLUMN_TYPES[expected])
    if values.dtype == target:
        return values
    if expected == "datetime" and values.dtype.kind == "M":
        return values.astype(target)
    if _is_upcast(values.dtype, target):
        return values.astype(target)
    raise _mismatch(label, values.dtype, expected)


def _is_upcast(source: Any, target: Any) -> bool:
    if source.kind == target.kind and source.kind in "iuf":
        return source.itemsize <= target.itemsize
    if source.kind == "u" and target.kind == "i":
        return source.itemsize < target.itemsize
    # MLflow lets ints of up to 32 bits become doubles: they fit a double's mantissa.
    return source.kind in "iu" and target == "float64" and source.itemsize <= 4


def _mismatch(label: str, got: Any, expected: str) -> SchemaEnforcementError:
    return SchemaEnforcementError(
        f"Column {label} has dtype {got}, which cannot be safely converted to the "
        f"signature's type {expected!r} ({COLUMN_TYPES[expected]})."
    )


def _enforce_tensors(data: Any, schema: Schema) -> Any:
    import numpy as np
    import pandas as pd

    specs: list[TensorSpec] = schema.inputs  # type: ignore[assignment]
    if isinstance(data, dict) and schema.has_input_names():
        return {s.name: _tensor(np.asarray(data.get(s.name)), s) for s in specs}
    if len(specs) != 1:
        raise SchemaEnforcementError(
            f"The signature expects {len(specs)} named arrays {[s.name for s in specs]}; "
            "pass a dict of numpy arrays."
        )
    if isinstance(data, pd.DataFrame):
        data = data.to_numpy()
    elif isinstance(data, list):
        data = np.asarray(data)
    if not isinstance(data, np.ndarray):
        raise SchemaEnforcementError(
            f"The signature expects a numpy array {_shape_text(specs[0])}; got "
            f"{type(data).__name__}."
        )
    return _tensor(data, specs[0])


def _tensor(array: Any, spec: TensorSpec) -> Any:
    import numpy as np

    label = f"Input {spec.name!r}" if spec.name else "Input"
    shape, expected = array.shape, spec.shape
    if len(shape) != len(expected) or any(
        e != -1 and e != a for e, a in zip(expected, shape, strict=True)
    ):
        raise SchemaEnforcementError(
            f"{label} has shape {shape}; the signature expects {_shape_text(spec)} "
            "(-1 means any size)."
        )
    dtype = "str" if array.dtype.kind == "U" else str(array.dtype)
    if dtype == spec.dtype:
        return array
    if spec.dtype != "str" and np.can_cast(array.dtype, np.dtype(spec.dtype), "safe"):
        return array.astype(spec.dtype)
    raise SchemaEnforcementError(
        f"{label} has dtype {dtype}, which cannot be safely converted to the signature's "
        f"dtype {spec.dtype}."
    )


def _shape_text(spec: TensorSpec) -> str:
    return f"of shape {tuple(spec.shape)} and dtype {spec.dtype}"
