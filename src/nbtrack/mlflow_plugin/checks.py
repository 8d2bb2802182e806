"""The plugin's checks of what MLflow hands a store, with nbtrack's rules and messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nbtrack.errors import InvalidParameterError
from nbtrack.validation import check_key, check_param_value, check_tag_value

# MLflow's limits for one log_batch call, and for one page of search_runs.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_SEARCH_RESULTS = 50_000


def tags(given: Sequence[Any]) -> dict[str, str]:
    return {check_key(t.key, "tag"): check_tag_value(t.key, t.value) for t in given}


def params(given: Sequence[Any]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for param in given:
        key = check_key(param.key, "param")
        value = check_param_value(key, param.value)
        if checked.get(key, value) != value:
            raise InvalidParameterError(
                f"Param {key!r} appears twice in one batch with different values "
                f"({checked[key]!r}, {value!r}); log one value per key."
            )
        checked[key] = value
    return checked


def dataset(dataset_input: Any) -> tuple[dict[str, Any], dict[str, str]]:
    dataset = dataset_input.dataset
    fields = {
        "name": dataset.name,
        "digest": dataset.digest,
        "source_type": dataset.source_type,
        "source": dataset.source,
        "schema": dataset.schema,
        "profile": dataset.profile,
    }
    for required in ("name", "digest", "source_type", "source"):
        if not isinstance(fields[required], str) or not fields[required]:
            raise InvalidParameterError(
                f"Dataset {required} must be a non-empty string, got {fields[required]!r}."
            )
    return fields, tags(dataset_input.tags or [])


def batch_limits(metrics: list, params: list, tags: list) -> None:
    limits = (
        ("metrics", len(metrics), MAX_METRICS_PER_BATCH),
        ("params", len(params), MAX_PARAMS_TAGS_PER_BATCH),
        ("tags", len(tags), MAX_PARAMS_TAGS_PER_BATCH),
        (
            "metrics, params and tags",
            len(metrics) + len(params) + len(tags),
            MAX_ENTITIES_PER_BATCH,
        ),
    )
    for what, count, limit in limits:
        if count > limit:
            raise InvalidParameterError(
                f"log_batch got {count} {what}; one batch takes at most {limit}. Split it."
            )


def max_results(max_results: Any) -> None:
    if max_results is not None and not (
        isinstance(max_results, int) and 0 < max_results <= MAX_SEARCH_RESULTS
    ):
        raise InvalidParameterError(
            f"max_results={max_results!r}: give a whole number from 1 to {MAX_SEARCH_RESULTS}."
        )
