"""The rules for keys and values users log; each broken rule is an error naming it.

Validation happens before anything is written, so a rejected call leaves the store
exactly as it was.
"""

from __future__ import annotations

import numbers
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from nbtrack.errors import InvalidParameterError

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500

_KEY_CHARACTERS = re.compile(r"[\w\-./ ]+")
_KEY_RULE = (
    f"keys are 1 to {MAX_KEY_LENGTH} characters of letters, digits, '_', '-', '.', '/' and "
    "spaces, and must not look like a path that resolves elsewhere ('..', '//', leading '/')"
)


def check_key(key: Any, kind: str) -> str:
    """Return ``key`` if it is a valid metric/param/tag key, else raise naming the rule."""
    if not isinstance(key, str):
        raise InvalidParameterError(
            f"Invalid {kind} key {key!r}: keys are strings, got {type(key).__name__}."
        )
    if (
        not key
        or len(key) > MAX_KEY_LENGTH
        or not _KEY_CHARACTERS.fullmatch(key)
        or _resolves_elsewhere(key)
    ):
        shown = key if len(key) <= 60 else key[:57] + "..."
        raise InvalidParameterError(f"Invalid {kind} key {shown!r}: {_KEY_RULE}.")
    return key


def _resolves_elsewhere(key: str) -> bool:
    # Keys can become file names, so "a/../b" and "./a" must not alias other keys.
    normalized = posixpath.normpath(key)
    return (
        normalized != key or normalized == "." or normalized.startswith("..") or key.startswith("/")
    )


def check_param_value(key: str, value: Any) -> str:
    """MLflow stores params as strings; ``str(value)`` must fit in 6,000 characters."""
    return _text_value("Param", key, value, MAX_PARAM_VALUE_LENGTH)


def check_tag_value(key: str, value: Any) -> str:
    """Tags are strings too; ``str(value)`` must fit in 8,000 characters."""
    return _text_value("Tag", key, value, MAX_TAG_VALUE_LENGTH)


def check_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Every key and value of ``tags`` checked (None is no tags); values as strings."""
    return {check_key(k, "tag"): check_tag_value(k, v) for k, v in (tags or {}).items()}


def _text_value(kind: str, key: str, value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise InvalidParameterError(
            f"{kind} '{key}' has a value of {len(text)} characters; {kind.lower()} values may "
            f"have at most {limit}. Log long text with log_text() instead."
        )
    return text


def metric_value(key: str, value: Any) -> float:
    """A metric value as a float: any real number (numpy scalars too), NaN and inf kept."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise InvalidParameterError(
        f"Metric '{key}' got {value!r} ({type(value).__name__}); metric values must be real "
        "numbers (int, float or a numpy number; NaN and infinities are allowed)."
    )


def metric_step(key: str, step: Any) -> int:
    if isinstance(step, numbers.Integral) and not isinstance(step, bool):
        return int(step)
    raise InvalidParameterError(
        f"Metric '{key}' got step={step!r}; steps must be integers (e.g. the epoch number)."
    )


def metric_timestamp(key: str, timestamp: Any) -> int:
    if (
        isinstance(timestamp, numbers.Integral)
        and not isinstance(timestamp, bool)
        and (timestamp >= 0)
    ):
        return int(timestamp)
    raise InvalidParameterError(
        f"Metric '{key}' got timestamp={timestamp!r}; timestamps are non-negative integers "
        "of milliseconds since the epoch."
    )


def check_experiment_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(
            f"Invalid experiment name {name!r}: names are non-empty strings."
        )
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InvalidParameterError(
            f"Experiment name of {len(name)} characters is too long; the limit is "
            f"{MAX_EXPERIMENT_NAME_LENGTH}."
        )
    return name
