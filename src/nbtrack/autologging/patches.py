"""Replacing attributes of classes and modules, and putting every original back.

Hooks translate and delegate: the code that runs inside a patched method must never
change what the user's call does. :func:`guarded` runs hook code and turns any fault into
a warning, so a bug in nbtrack can cost a log entry, never a fit.
"""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING = object()


class AutologWarning(UserWarning):
    """Something autologging could not record; the user's code ran unchanged."""


class Patches:
    """The attributes an integration replaced, restorable in reverse order."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def replace(self, owner: Any, name: str, new: Any) -> None:
        """Set ``owner.name = new``, remembering ``owner``'s own previous value (if any)."""
        own = vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        self._saved.append((owner, name, own))
        setattr(owner, name, new)

    def restore(self) -> None:
        """Put every replaced attribute back exactly (an inherited one is deleted again)."""
        while self._saved:
            owner, name, own = self._saved.pop()
            if own is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, own)

    def __len__(self) -> int:
        return len(self._saved)


def warn(message: str, silent: bool = False) -> None:
    if silent:
        return
    try:
        warnings.warn(message, AutologWarning, stacklevel=3)
    except Exception:  # warnings turned into errors must still not break the user's code
        sys.stderr.write(f"AutologWarning: {message}\n")


def guarded(what: str, function: Callable[..., T], *args: Any, silent: bool = False) -> T | None:
    """``function(*args)``, or None with a warning naming ``what`` if it raises."""
    try:
        return function(*args)
    except Exception as error:
        warn(f"nbtrack autolog could not {what}: {type(error).__name__}: {error}", silent)
        return None


def find_methods(classes: Sequence[type], names: Sequence[str]) -> list[tuple[Any, str, Any]]:
    """(owner, attribute, original) for each of the classes' methods ``names``, all found
    before any is replaced so that no wrapper ever wraps another."""
    found, seen_descriptors = [], set()
    for cls in classes:
        for name in names:
            raw = raw_attribute(cls, name)
            if isinstance(raw, types.FunctionType):
                found.append((cls, name, raw))
            elif hasattr(raw, "check") and hasattr(raw, "fn") and id(raw) not in seen_descriptors:
                # sklearn's ``available_if``: patch the function inside the descriptor,
                # so ``hasattr(pipeline, "predict")`` still answers as before.
                seen_descriptors.add(id(raw))
                found.append((raw, "fn", raw.fn))
    return found


def raw_attribute(cls: type, name: str) -> Any:
    """``name`` as the class or its nearest base defines it, descriptors unresolved."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None
