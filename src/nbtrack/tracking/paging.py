"""Pages of search results with MLflow's page tokens (base64 JSON of the next offset)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from nbtrack.errors import InvalidParameterError


class PagedList(list):
    """A page of results, as MLflow returns them: ``token`` fetches the next page (None on
    the last one)."""

    def __init__(self, items: Sequence[Any], token: str | None = None) -> None:
        super().__init__(items)
        self.token = token


def page(items: Sequence[Any], max_results: int | None, page_token: str | None) -> PagedList:
    """The page of ``items`` (a list, or search hits: anything a slice turns into a list)
    that ``page_token`` (None: the first) points at."""
    start = offset_of(page_token)
    if max_results is None:
        return PagedList(items[start:])
    end = start + max_results
    return PagedList(items[start:end], token_for(end) if end < len(items) else None)


def token_for(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def offset_of(page_token: str | None) -> int:
    if not page_token:
        return 0
    try:
        offset = json.loads(base64.b64decode(page_token, validate=True))["offset"]
    except (ValueError, TypeError, KeyError) as error:
        raise InvalidParameterError(
            f"Invalid page token {page_token!r}: pass the token of an earlier page."
        ) from error
    if not isinstance(offset, int) or offset < 0:
        raise InvalidParameterError(f"Invalid page token {page_token!r}: bad offset.")
    return offset
