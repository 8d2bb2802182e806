"""The rules for registry names, aliases, versions and reasons, and who is acting.

Each rule broken is an :class:`~nbtrack.errors.InvalidParameterError` naming the value
and the rule, raised before anything is written.
"""

from __future__ import annotations

import re
import sys
import warnings
from typing import Any

from nbtrack.errors import InvalidParameterError

MAX_NAME_LENGTH = 256
MAX_ALIAS_LENGTH = 255
MAX_REASON_LENGTH = 5000
NO_REASON = "no reason given"
LATEST = "latest"
_ALIAS = re.compile(r"[\w\-]+")
_VERSION_ALIAS = re.compile(r"[vV]\d+")


class MissingReasonWarning(UserWarning):
    """An MLflow-style registry call moved a version without saying why."""


def identity() -> str:
    """Who is acting: ``$NBTRACK_USER`` if set, else the OS user (as ``mlflow.user``)."""
    from nbtrack.tracking.identity import current_user

    return current_user()


def check_model_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(f"Invalid model name {name!r}: names are non-empty strings.")
    if "/" in name or ":" in name or "@" in name:
        raise InvalidParameterError(
            f"Invalid model name {name!r}: names cannot contain '/', ':' or '@' (they "
            "separate the parts of models:/ URIs)."
        )
    if len(name) > MAX_NAME_LENGTH or name != name.strip():
        raise InvalidParameterError(
            f"Invalid model name {name!r}: at most {MAX_NAME_LENGTH} characters, without "
            "leading or trailing spaces."
        )
    return name


def check_alias(alias: Any) -> str:
    """An alias as stored: lowercase (aliases are case-insensitive, as MLflow documents)."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or len(alias) > MAX_ALIAS_LENGTH:
        raise InvalidParameterError(
            f"Invalid alias {alias!r}: aliases are 1 to {MAX_ALIAS_LENGTH} letters, digits, "
            "'_' or '-'."
        )
    if alias.lower() == LATEST:
        raise InvalidParameterError(
            "The alias 'latest' is reserved: it always means the newest version "
            "(models:/NAME@latest). Choose another alias."
        )
    if _VERSION_ALIAS.fullmatch(alias):
        raise InvalidParameterError(
            f"The alias {alias!r} is reserved: 'v' followed by digits reads as a version number."
        )
    return alias.lower()


def check_version(version: Any) -> int:
    """A version number from an int or a string of digits."""
    if isinstance(version, bool):
        raise InvalidParameterError(f"Invalid version {version!r}: versions are positive integers.")
    if isinstance(version, int) and version > 0:
        return version
    if isinstance(version, str) and version.strip().isdigit() and int(version) > 0:
        return int(version)
    raise InvalidParameterError(f"Invalid version {version!r}: versions are positive integers.")


def check_reason(reason: Any) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidParameterError(
            f"Invalid reason {reason!r}: a reason is a non-empty sentence saying why."
        )
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidParameterError(
            f"A reason of {len(reason)} characters is too long; the limit is {MAX_REASON_LENGTH}."
        )
    return reason.strip()


def required_reason(reason: str | None, action: str, how: str) -> str:
    """``reason``, or an error saying that ``action`` needs one and ``how`` to give it."""
    if reason is None:
        raise InvalidParameterError(f"{action} needs a reason: {how}.")
    return reason


def mlflow_style_reason(reason: str | None, action: str, how: str, required: bool) -> str:
    """The reason an MLflow-style call records: its own, or "no reason given" with a warning.

    When the model's policy has ``require_reason=True`` a missing reason is an error.
    """
    if reason is not None:
        return reason
    if required:
        raise InvalidParameterError(
            f"{action} needs a reason: the model's policy has require_reason=True. {how}."
        )
    warnings.warn(
        f"{action} without a reason; the registry records {NO_REASON!r}. {how}.",
        MissingReasonWarning,
        stacklevel=_caller_outside_nbtrack(),
    )
    return NO_REASON


def _caller_outside_nbtrack() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside nbtrack."""
    frame, level = sys._getframe(1), 1  # level 1: the function that calls warn()
    while frame is not None and frame.f_globals.get("__name__", "").startswith("nbtrack."):
        frame, level = frame.f_back, level + 1
    return level
