"""Which shared dependency a tool call reaches: the key of its circuit breaker.

Calls to one destination share a breaker; calls elsewhere are not affected by its failures.
None: the call reaches nothing shared (a local computation), so there is no breaker to open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from events.tools import HttpGetArgs

__all__ = ["BUILTIN_DESTINATIONS", "DestinationOf", "http_origin", "local"]

DestinationOf = Callable[[Any], str | None]


def local(_args: Any) -> str | None:
    return None


def http_origin(args: HttpGetArgs) -> str | None:
    """``scheme://host:port`` of the URL (host lower-cased, default port filled in)."""
    try:
        url = httpx.URL(args.url)
    except httpx.InvalidURL:
        return None  # the call fails as an invalid URL, never reaching anything
    if not url.host:
        return None
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return f"{url.scheme}://{url.host}:{port}"


BUILTIN_DESTINATIONS: dict[str, DestinationOf] = {"http_get": http_origin}
