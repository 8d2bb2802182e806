"""The model registry as this package reaches it.

The registry sits a layer above model packages (a version is a verified package), yet
``models:/`` URIs and ``log_model(registered_model_name=...)`` need it from here. So the
package (``nbtrack/__init__.py``) links the registry's two functions in by name, and they
are imported on first use.
"""

from __future__ import annotations

import pkgutil
from typing import Any

_linked: dict[str, str] = {}


def link(lookup: str, register: str) -> None:
    """Name (``"module:function"``) the registry's version lookup and its registration."""
    _linked.update(lookup=lookup, register=register)


def lookup(name: str, ref: str) -> dict[str, Any]:
    """The version row ``models:/NAME/REF`` names."""
    return _function("lookup")(name, ref)


def register(model_uri: str, name: str, reason: str | None) -> Any:
    """Register a logged package as the next version of ``name``; the ModelVersion."""
    return _function("register")(model_uri, name, reason=reason)


def _function(role: str) -> Any:
    if role not in _linked:
        raise RuntimeError("import nbtrack first: it links the model registry in.")
    return pkgutil.resolve_name(_linked[role])
