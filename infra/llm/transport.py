"""One HTTP attempt at a provider: post JSON or read SSE, and classify what went wrong.

Every failure becomes an :class:`AttemptError` whose ``reason`` is built from the status
code, the exception type and (redacted, truncated) response text: never from request headers,
so an API key cannot leak into an exception, a log line, an event or a DLQ record.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

__all__ = [
    "AttemptError",
    "post_json",
    "post_sse",
    "redact",
    "retry_after_seconds",
]

_BODY_CHARS = 200
# Key shapes providers echo back in error messages (OpenAI shows "sk-abc***wxyz").
_KEY_PATTERN = re.compile(r"\b(sk|sk-ant|sk-proj|gsk|or)-[A-Za-z0-9_\-\*]{6,}")


class AttemptError(Exception):
    """One attempt failed. ``transient``: worth retrying this provider (429, 5xx, timeouts,
    connection errors). ``unusable``: the provider answered, but not something agora can use
    (malformed JSON, wrong shape). Neither: refused (401, 400…), go to the next provider.
    """

    def __init__(
        self,
        reason: str,
        *,
        transient: bool = False,
        unusable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.unusable = unusable
        self.retry_after_s = retry_after_s


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` without any of ``secrets`` nor anything shaped like a provider key."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _failed_status(response: httpx.Response, text: str, secrets: Iterable[str]) -> AttemptError:
    status = response.status_code
    snippet = redact(" ".join(text.split())[:_BODY_CHARS], secrets)
    reason = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    transient = status in (408, 409, 429) or status >= 500
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    return AttemptError(reason, transient=transient, retry_after_s=retry_after)


def _failed_transport(exc: httpx.HTTPError, timeout_s: float) -> AttemptError:
    if isinstance(exc, httpx.TimeoutException):
        return AttemptError(f"timed out after {timeout_s:g}s", transient=True)
    if isinstance(exc, httpx.TransportError):
        return AttemptError(f"connection failed ({type(exc).__name__})", transient=True)
    return AttemptError(f"HTTP error ({type(exc).__name__})", transient=True)


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str],
    body: dict[str, Any],
    timeout_s: float,
    secrets: Iterable[str],
) -> dict[str, Any]:
    """POST ``body``; the decoded JSON object of a 2xx answer, else :class:`AttemptError`."""
    try:
        response = await http.post(url, headers=headers, json=body, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise _failed_transport(exc, timeout_s) from None
    if not response.is_success:
        raise _failed_status(response, response.text, secrets)
    try:
        decoded = response.json()
    except ValueError:
        raise AttemptError(
            f"malformed JSON in a {response.status_code} answer", unusable=True
        ) from None
    if not isinstance(decoded, dict):
        raise AttemptError("the answer is JSON but not an object", unusable=True)
    return decoded


async def post_sse(
    http: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str],
    body: dict[str, Any],
    timeout_s: float,
    secrets: Iterable[str],
) -> AsyncIterator[dict[str, Any] | None]:
    """POST ``body`` and yield each server-sent event's JSON ``data`` (None for ``[DONE]``).

    ``timeout_s`` bounds connecting and each wait for the next bytes, not the whole stream.
    """
    try:
        async with http.stream("POST", url, headers=headers, json=body, timeout=timeout_s) as resp:
            if not resp.is_success:
                text = (await resp.aread()).decode("utf-8", "replace")
                raise _failed_status(resp, text, secrets)
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue  # event names, comments, keep-alives, blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    yield None
                    continue
                try:
                    decoded = json.loads(data)
                except ValueError:
                    raise AttemptError(
                        "malformed JSON in the event stream", unusable=True
                    ) from None
                if not isinstance(decoded, dict):
                    raise AttemptError("a stream event is JSON but not an object", unusable=True)
                yield decoded
    except httpx.HTTPError as exc:
        raise _failed_transport(exc, timeout_s) from None
