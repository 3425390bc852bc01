"""nextToken / maxResults paging as ECS does it: opaque tokens, bounded page sizes."""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

from portside.errors import InvalidParameterException

T = TypeVar("T")


def paginate(items: list[T], params: dict[str, Any], limit: int = 100, default: int | None = None) -> tuple[list[T], str | None]:
    """One page of ``items`` per the request's maxResults and nextToken, and the next token."""
    size = params.get("maxResults")
    if size is None:
        size = default or limit
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= limit:
        raise InvalidParameterException(f"maxResults must be an integer from 1 to {limit}.")
    start = _decode(params.get("nextToken"))
    page = items[start : start + size]
    token = _encode(start + size) if start + size < len(items) else None
    return page, token


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _decode(token: Any) -> int:
    if token in (None, ""):
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(token).encode()))["o"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise InvalidParameterException("Invalid nextToken.")
