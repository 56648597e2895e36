"""One MCP server, connected with the official SDK's ``mcp.Client``: listing and calls.

The SDK's client is an anyio context manager that must be entered and left in one task, so a
*holder* task keeps each connection open until it is dropped. Calls from any task share it
(JSON-RPC multiplexes them). A connection that broke (the process exited, the HTTP server went
away) is dropped; the next call connects again, once, under a lock. Every failure becomes a
``ToolError`` that says what happened to which server and whether a retry can help.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.session import IncomingMessage
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, Tool, ToolListChangedNotification
from pydantic import ValidationError

from events.errors import ToolError
from infra.environment import process_environment
from infra.logging import get_logger, redact_stdlib_loggers, register_secret
from infra.mcp.base import ConnectionBase, describe_error
from infra.mcp.config import McpServer, resolve_headers
from infra.mcp.listing import qualified, result_of, specs_of

__all__ = ["McpConnection"]

log = get_logger("agora.mcp")
# The SDK and its HTTP client log through the standard library: tokens stay out there too.
_STDLIB_LOGGERS = ("mcp", "httpx2", "httpcore2")

_MAX_PAGES = 100
_CLOSE_TIMEOUT_S = 5.0


class McpConnection(ConnectionBase[Client]):
    """A server's session and its latest listing. ``on_listing`` hears every new listing."""

    def __init__(
        self,
        server: McpServer,
        on_listing: Callable[[McpConnection], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(on_listing)
        self.server = server
        self._stop: asyncio.Event | None = None
        self._holder: asyncio.Task[None] | None = None

    @property
    def label(self) -> str:
        return self.server.label

    def _problem_of(self, exc: Exception) -> str:
        problem = describe_error(exc)
        if isinstance(exc, MCPError) and self.server.url is not None:
            # An HTTP error status (401, 403, 404…) reaches the SDK only as this.
            problem += " (check the server's URL and its credentials)"
        return problem

    def _unreachable(self) -> str:
        return f"{self.label} ({self.server.transport}) cannot be reached: {self.problem}"

    async def run(self, tool: str, arguments: dict[str, Any]) -> tuple[str, Any]:
        """(text, structured content) of calling ``tool`` (``<server>.<tool>``)."""
        own = tool.removeprefix(qualified(self.server.name, ""))
        result = await self.call(own, arguments)
        if result.is_error:
            # A tool that failed may be one the server no longer offers: list again.
            self.relist_soon()
        return result_of(self.server.name, own, result)

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """The server's ``CallToolResult`` for ``tool`` (its own, unqualified name)."""
        if self._client is None:
            await self.connect()
        client = self._client
        if client is None:  # dropped meanwhile by a concurrent failure
            raise ToolError(
                f"MCP server {self.server.name} disconnected: {self.problem}", transient=True
            )
        try:
            return await client.call_tool(tool, arguments)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                await self._lost(client, "the connection closed during the call")
                how = (
                    "(it crashed or exited); it is started again on the next call"
                    if self.server.command is not None
                    else "(it went away or dropped the session); agora connects again on the "
                    "next call"
                )
                raise ToolError(
                    f"MCP server {self.server.name} closed the connection during the call of "
                    f"{tool} {how}",
                    transient=True,
                ) from exc
            # The server answered with a JSON-RPC error: this call, not the server, is wrong.
            self.relist_soon()
            raise ToolError(
                f"MCP server {self.server.name} refused the call of {tool}: {exc}"
            ) from exc
        except ValidationError as exc:
            raise ToolError(
                f"MCP server {self.server.name} answered the call of {tool} with a result "
                f"that is not valid MCP: {_validation_summary(exc)}"
            ) from exc
        except RuntimeError as exc:
            if "structured content" not in str(exc):
                # The session itself broke (it was closed under the call).
                await self._lost(client, describe_error(exc))
                raise ToolError(
                    f"MCP server {self.server.name} failed during the call of {tool}: "
                    f"{describe_error(exc)}",
                    transient=True,
                ) from exc
            # The SDK checks structured content against the tool's output schema.
            raise ToolError(
                f"MCP server {self.server.name} answered the call of {tool} against the "
                f"tool's own schema: {str(exc).splitlines()[0]}"
            ) from exc
        except (OSError, httpx2.HTTPError, anyio.BrokenResourceError) as exc:
            why = describe_error(exc)
            await self._lost(client, why)
            raise ToolError(
                f"MCP server {self.server.name} failed during the call of {tool}: {why}",
                transient=True,
            ) from exc

    # -- internals ---------------------------------------------------------------------

    async def _open(self) -> None:
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        transport = self._transport()
        client = Client(transport, message_handler=self._on_message)
        self._stop = stop
        self._holder = asyncio.create_task(self._hold(client, ready, stop))
        self._client = await ready
        self.protocol_version = client.protocol_version
        await self._list(client)

    def _transport(self) -> Any:
        server = self.server
        if server.command is not None:
            params = StdioServerParameters(
                command=server.command,
                args=list(server.args),
                env=dict(server.env) or None,
                cwd=server.cwd,
            )
            return stdio_client(params, errlog=sys.stderr)
        assert server.url is not None
        # Header values may name any variable the user's configuration chose (its secrets).
        headers, secrets = resolve_headers(server, process_environment())
        for secret in secrets:
            register_secret(secret)
        redact_stdlib_loggers(*_STDLIB_LOGGERS)
        return _http_transport(server.url, headers)

    async def _hold(
        self, client: Client, ready: asyncio.Future[Client], stop: asyncio.Event
    ) -> None:
        try:
            async with client:
                ready.set_result(client)
                await stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ToolError(str(exc)))
            else:
                why = describe_error(exc)
                log.warning("mcp_connection_ended", server=self.server.name, error=why)
        finally:
            if self._client is client:
                self._client = None

    async def _list(self, client: Client) -> None:
        tools: list[Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            tools += page.tools
            cursor = page.next_cursor
            if cursor is None:
                break
        listing = specs_of(self.server, tools)
        for skipped in listing.skipped:
            log.warning("mcp_tool_skipped", server=self.server.name, tool=skipped)
        await self._take_listing(listing)

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, ToolListChangedNotification):
            self.relist_soon()

    def relist_soon(self) -> None:
        """List the server's tools again in the background (its set may have changed); one
        listing at a time, however many failed calls ask for one."""
        client = self._client
        if client is not None:
            self._in_background(lambda: self._list(client), alone=True)

    async def _drop(self) -> None:
        holder, stop, session = self._holder, self._stop, self._client
        self._client = self._holder = self._stop = None
        if stop is not None:
            stop.set()
        if holder is None:
            return
        if session is None:
            # The handshake never completed (a server that says nothing): there is no session
            # to close politely, and waiting for one only delays shutdown by the close timeout.
            holder.cancel()
            with suppress(BaseException):
                await holder
            return
        try:
            # The session closes (a stdio server's process is ended) as the holder leaves it.
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await asyncio.shield(holder)
        except asyncio.CancelledError:
            holder.cancel()
            raise
        except BaseException:
            # It would not close in time (or failed closing): cancel it, and wait for that.
            holder.cancel()
            with suppress(BaseException):
                await holder


@asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    # The SDK leaves a client it was handed open: this one is closed with the connection.
    # Its timeouts are the SDK's defaults (a response stream may stay open); each call has
    # its own timeout in the tool runner.
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


def _validation_summary(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in error['loc']) or 'result'}: {error['msg']}"
        for error in exc.errors(include_url=False)[:5]
    ]
    return "; ".join(problems)
