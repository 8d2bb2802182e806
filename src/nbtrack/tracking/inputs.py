"""Dataset inputs as a run records them: MLflow's dataset fields and the input's tags."""

from __future__ import annotations

from typing import Any

from nbtrack.errors import InvalidParameterError

CONTEXT_TAG = "mlflow.data.context"
DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")


def describe(
    dataset: Any, context: str | None, tags: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The fields and input tags of a logged dataset.

    ``dataset`` is an :class:`nbtrack.data.Dataset` or anything with MLflow's ``to_dict()``
    and ``digest`` (an ``mlflow.data`` dataset works too).
    """
    if not (hasattr(dataset, "to_dict") and hasattr(dataset, "digest")):
        raise InvalidParameterError(
            f"log_input() needs a dataset (nbtrack.data.from_pandas / from_numpy, or an "
            f"mlflow.data dataset); got {type(dataset).__name__}."
        )
    fields = dataset.to_dict()
    missing = [k for k in DATASET_FIELDS[:4] if not fields.get(k)]
    if missing:
        raise InvalidParameterError(f"log_input(): the dataset has no {', '.join(missing)}.")
    input_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    if context is not None:
        input_tags[CONTEXT_TAG] = str(context)
    return {k: fields.get(k) for k in DATASET_FIELDS}, input_tags


def input_key(dataset: dict[str, Any], tags: dict[str, str]) -> tuple:
    """What makes two logged inputs the same one (MLflow keeps the first)."""
    return (dataset["name"], dataset["digest"], tuple(sorted(tags.items())))
