"""Datasets as MLflow describes them (``mlflow.data``): name, digest, source, schema, profile.

A :class:`Dataset` is a small description, not the data: ``from_pandas`` and ``from_numpy``
compute MLflow's 8-character digest (the same value MLflow computes for the same data), a
column or tensor schema and a profile (row and element counts), and pass them to
:func:`nbtrack.log_input`::

    import nbtrack as mlflow
    dataset = mlflow.data.from_pandas(df, source="data/train.csv", targets="label")
    with mlflow.start_run():
        mlflow.log_input(dataset, context="training")

pandas and numpy are imported only when a dataset is built.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from nbtrack.entities import DatasetInput, DatasetRecord, InputTag
from nbtrack.errors import InvalidParameterError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["Dataset", "DatasetInput", "DatasetRecord", "InputTag", "from_numpy", "from_pandas"]

MAX_HASHED_ROWS = 10_000  # MLflow hashes at most this many rows (or flat elements)


class Dataset:
    """A description of a dataset: what :func:`nbtrack.log_input` records.

    Parameters
    ----------
    name
        Shown in run views; MLflow's default is ``"dataset"``.
    digest
        A short fingerprint of the content.
    source_type, source
        Where the data came from: ``("local", '{"uri": ...}')``, ``("http", '{"url": ...}')``,
        ``("code", '{"tags": {...}}')`` and so on, as MLflow spells them.
    schema, profile
        JSON text, or None.
    """

    def __init__(
        self,
        name: str,
        digest: str,
        source_type: str,
        source: str,
        schema: str | None = None,
        profile: str | None = None,
    ) -> None:
        self.name = name
        self.digest = digest
        self.source_type = source_type
        self.source = source
        self.schema = schema
        self.profile = profile

    def to_dict(self) -> dict[str, str | None]:
        """The fields as MLflow's ``Dataset.to_dict()`` returns them."""
        return {
            "name": self.name,
            "digest": self.digest,
            "source": self.source,
            "source_type": self.source_type,
            "schema": self.schema,
            "profile": self.profile,
        }

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r} digest={self.digest} source_type={self.source_type}>"


def from_pandas(
    df: pd.DataFrame,
    source: str | dict[str, Any] | None = None,
    targets: str | None = None,
    name: str | None = None,
    digest: str | None = None,
    predictions: str | None = None,
) -> Dataset:
    """Describe a DataFrame: MLflow's digest, a column schema and ``num_rows``/``num_elements``.

    ``source`` is a path or URI the data came from; without one the source is the code
    that is running (MLflow's ``code`` source). ``targets`` and ``predictions`` name
    columns and are accepted for MLflow compatibility.
    """
    for column in (targets, predictions):
        if column is not None and column not in df.columns:
            raise InvalidParameterError(f"Column {column!r} is not in the DataFrame.")
    source_type, source_json = _source(source)
    return Dataset(
        name=name or "dataset",
        digest=digest or pandas_digest(df),
        source_type=source_type,
        source=source_json,
        schema=_colspec_schema(df),
        profile=_json({"num_rows": len(df), "num_elements": int(df.size)}),
    )


def from_numpy(
    features: np.ndarray,
    source: str | dict[str, Any] | None = None,
    targets: np.ndarray | None = None,
    name: str | None = None,
    digest: str | None = None,
) -> Dataset:
    """Describe numpy features (and targets): MLflow's digest, a tensor schema and shapes."""
    import numpy as np

    features = np.asarray(features)
    targets = None if targets is None else np.asarray(targets)
    profile: dict[str, Any] = {
        "features_shape": list(features.shape),
        "features_size": int(features.size),
        "features_nbytes": int(features.nbytes),
    }
    if targets is not None:
        profile.update(
            targets_shape=list(targets.shape),
            targets_size=int(targets.size),
            targets_nbytes=int(targets.nbytes),
        )
    schema = {
        "mlflow_tensorspec": {
            "features": _tensor_spec(features),
            "targets": None if targets is None else _tensor_spec(targets),
        }
    }
    source_type, source_json = _source(source)
    return Dataset(
        name=name or "dataset",
        digest=digest or numpy_digest(features, targets),
        source_type=source_type,
        source=source_json,
        schema=_json(schema),
        profile=_json(profile),
    )


def dataset_for(data: Any, targets: Any = None, source: Any = None) -> Dataset | None:
    """A :class:`Dataset` for what a ``fit`` received (DataFrame, array, sparse), else None."""
    import numpy as np

    if _is_dataframe(data):
        return from_pandas(data, source=source)
    if hasattr(data, "toarray") and hasattr(data, "nnz"):  # scipy.sparse, as MLflow densifies
        data = data.toarray()
        if targets is not None and hasattr(targets, "toarray"):
            targets = targets.toarray()
    if isinstance(data, np.ndarray):
        if targets is not None and not isinstance(targets, np.ndarray):
            targets = np.asarray(targets)
        return from_numpy(data, source=source, targets=targets)
    return None


# -- digests: MLflow's algorithm, so equal data gets equal digests in both tools ----------------


def pandas_digest(df: pd.DataFrame) -> str:
    """MD5 over pandas' row hashes of the first 10,000 rows (string and numeric columns only),
    the row count and the column names, truncated to 8 hex digits."""
    import numpy as np
    import pandas as pd

    head = df.head(MAX_HASHED_ROWS)
    # Columns whose every value is a str; only object-like columns can qualify, so the
    # per-value type check is skipped for numeric columns (same result, far cheaper).
    mask = [not _is_numeric(df[c]) and _all_strings(df[c]) for c in df.columns]
    string_columns = df.columns[np.asarray(mask, dtype=bool)]
    numeric_columns = head.select_dtypes(include=[np.number]).columns
    kept = head[string_columns.union(numeric_columns)]
    parts = [pd.util.hash_pandas_object(kept).values, np.int64(len(df))]
    return _md5([*parts, *(str(c).encode() for c in df.columns)])


def numpy_digest(features: np.ndarray, targets: np.ndarray | None = None) -> str:
    """MD5 over pandas' hash of the first 10,000 flat elements and the full shape of the
    features (then the targets), truncated to 8 hex digits."""
    import numpy as np
    import pandas as pd

    parts: list[Any] = []
    for array in (features, targets):
        if array is None:
            continue
        arrays = [array[k] for k in sorted(array)] if isinstance(array, dict) else [array]
        for item in arrays:
            flat = np.asarray(item).flatten()[:MAX_HASHED_ROWS]
            try:
                parts.append(pd.util.hash_array(flat))
            except TypeError:  # values pandas cannot hash: their count stands in
                parts.append(np.int64(flat.size))
            parts.extend(np.int64(n) for n in np.shape(item))
    return _md5(parts)


def _md5(parts: list[Any]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:8]


def _is_numeric(series: Any) -> bool:
    return series.dtype.kind in "biufc"


def _all_strings(series: Any) -> bool:
    return all(type(value) is str for value in series.array)


def _is_dataframe(data: Any) -> bool:
    module = type(data).__module__
    return module.startswith("pandas") and type(data).__name__ == "DataFrame"


# -- schemas ------------------------------------------------------------------------------------


class _NoSchema(Exception):
    """A column whose type MLflow cannot infer (mixed object values): no schema at all."""


def _colspec_schema(df: pd.DataFrame) -> str | None:
    try:
        specs = [
            {"type": _column_type(df[c]), "name": str(c), "required": not bool(df[c].isna().any())}
            for c in df.columns
        ]
    except _NoSchema:
        return None
    return _json({"mlflow_colspec": specs})


def _column_type(series: Any) -> str:
    kind, size = series.dtype.kind, getattr(series.dtype, "itemsize", 8)
    if kind == "b":
        return "boolean"
    if kind in "iu":
        if size < 4 or (kind == "i" and size == 4):
            return "integer"
        return "long" if size < 8 or kind == "i" else "double"
    if kind == "f":
        return "float" if size <= 4 else "double"
    if kind == "M":
        return "datetime"
    if kind == "S":
        return "binary"
    values = series.dropna().array
    if all(type(v) is str for v in values):
        return "string"
    if all(type(v) is bytes for v in values):
        return "binary"
    raise _NoSchema(series.name)


# numpy's names for these kinds differ from the ones MLflow's tensor specs use.
_TENSOR_KIND_NAMES = {"U": "str", "S": "bytes", "O": "object"}


def _tensor_spec(array: np.ndarray) -> str:
    shape = [-1, *array.shape[1:]]
    dtype = _TENSOR_KIND_NAMES.get(array.dtype.kind, str(array.dtype))
    return json.dumps([{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}])


# -- sources ------------------------------------------------------------------------------------


def _source(source: str | os.PathLike[str] | dict[str, Any] | None) -> tuple[str, str]:
    """(source_type, source JSON) as MLflow spells them for a path, URL or the running code."""
    if source is None:
        return "code", _json({"tags": _code_tags()})
    if isinstance(source, dict):
        return "code", _json({"tags": dict(source)})
    text = os.fspath(source)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("http", "https"):
        return "http", _json({"url": text})
    if scheme and scheme != "file":
        return scheme, _json({"uri": text})
    return "local", _json({"uri": text})


def _code_tags() -> dict[str, str]:
    """The running code, as MLflow's ``CodeDatasetSource`` names it (user and source)."""
    from nbtrack.capture.notebook import source
    from nbtrack.tracking.identity import current_user

    name, kind = source()
    return {"mlflow.user": current_user(), "mlflow.source.name": name, "mlflow.source.type": kind}


def _json(value: Any) -> str:
    return json.dumps(value)
