"""Secret-looking names: auto-captured values under them are never stored."""

from __future__ import annotations

import re

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(r"token|password|passwd|secret|key|credential", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True for names like ``api_key``, ``HF_TOKEN``, ``db_password``, ``client_secret``."""
    return bool(_SECRET_NAME.search(name))


def redact(name: str, value: object) -> object:
    return REDACTED if is_secret_name(name) else value
