"""Fetches a URL and returns the body text.

Server errors (5xx), connection failures and timeouts are transient: a retry may well
succeed. Client errors (4xx) are not: asking again will get the same answer. The body is
read as a stream and cut at ``MAX_BODY_BYTES`` so a huge response cannot exhaust memory.
"""

from __future__ import annotations

import httpx

from events.errors import ToolError
from events.tools import HttpGetArgs
from services.executor.tools.context import ToolContext

__all__ = ["MAX_BODY_BYTES", "run"]

MAX_BODY_BYTES = 1024 * 1024


async def run(args: HttpGetArgs, ctx: ToolContext) -> str:
    url = args.url
    try:
        async with ctx.http.stream("GET", url, follow_redirects=True) as response:
            status = response.status_code
            if status >= 500:
                raise ToolError(
                    f"GET {url} failed with HTTP {status} (server error)", transient=True
                )
            if status >= 400:
                raise ToolError(f"GET {url} failed with HTTP {status} (client error)")
            body, truncated = await _read_capped(response)
            encoding = response.encoding or "utf-8"
    except httpx.TimeoutException as exc:
        raise ToolError(f"GET {url} timed out: {type(exc).__name__}", transient=True) from exc
    except httpx.TransportError as exc:
        # Connection refused/reset, DNS failures, broken reads: the network, not the request.
        if isinstance(exc, httpx.UnsupportedProtocol):
            raise ToolError(f"GET {url}: unsupported URL: {exc}") from exc
        raise ToolError(f"GET {url} failed: {type(exc).__name__}: {exc}", transient=True) from exc
    except httpx.InvalidURL as exc:
        raise ToolError(f"GET {url}: invalid URL: {exc}") from exc
    except httpx.HTTPError as exc:  # e.g. too many redirects: asking again will not help
        raise ToolError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
    text = body.decode(encoding, errors="replace")
    if truncated:
        text += f"\n[body truncated after {MAX_BODY_BYTES} bytes]"
    return text


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"".join(chunks)[:MAX_BODY_BYTES], True
    return b"".join(chunks), False
