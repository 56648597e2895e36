"""MCP servers' tools for agora (docs/mcp.md): configuration, connections, the catalogue.

:class:`McpTools` connects every configured server with the official SDK (``mcp``), keeps
each one's latest tool listing as tool specs (``<server>.<tool>``, their JSON Schemas), and
calls them. The executor registers those tools in its registry; the planner reads the same
listing to validate and plan with them (:class:`ToolCatalogue`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from events.tools import BUILTIN_TOOLS, ToolSpec
from infra.logging import get_logger
from infra.mcp.config import McpServer, parse_servers
from infra.mcp.connection import McpConnection
from infra.mcp.listing import result_of

__all__ = [
    "McpServer",
    "McpTools",
    "ServerStatus",
    "ToolCatalogue",
    "parse_servers",
]

log = get_logger("agora.mcp")

# How often servers that are not connected are tried again, at most.
_RECONNECT_MIN_S = 1.0
_RECONNECT_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    transport: str
    where: str
    trusted: bool
    connected: bool
    protocol_version: str | None
    tools: tuple[str, ...]
    skipped: tuple[str, ...]
    problem: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "transport": self.transport,
            "where": self.where,
            "trusted": self.trusted,
            "connected": self.connected,
            "protocol_version": self.protocol_version,
            "tools": list(self.tools),
            "skipped": list(self.skipped),
            "problem": self.problem,
        }


class McpTools:
    """Every configured server's connection. ``on_listing(server, specs)`` hears each change
    of a server's tool set (its first listing included)."""

    def __init__(
        self,
        servers: Sequence[McpServer],
        on_listing: Callable[[McpServer, Mapping[str, ToolSpec]], None] | None = None,
    ) -> None:
        self._on_listing = on_listing
        self.connections = {
            server.name: McpConnection(server, on_listing=self._listed) for server in servers
        }

    def _listed(self, connection: McpConnection) -> None:
        log.info(
            "mcp_tools_listed",
            server=connection.server.name,
            tools=sorted(connection.listing.specs),
        )
        if self._on_listing is not None:
            self._on_listing(connection.server, connection.listing.specs)

    async def start(self) -> None:
        """Connect every server once; one that fails is logged and tried again later."""
        results = await asyncio.gather(
            *(connection.connect() for connection in self.connections.values()),
            return_exceptions=True,
        )
        for connection, result in zip(self.connections.values(), results, strict=True):
            if isinstance(result, BaseException):
                log.warning(
                    "mcp_server_unavailable", server=connection.server.name, error=str(result)
                )

    async def keep_connected(self, stop: asyncio.Event) -> None:
        """Until ``stop``: connect the servers that are not connected, with backoff."""
        delay = _RECONNECT_MIN_S
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            down = [c for c in self.connections.values() if not c.connected]
            results = await asyncio.gather(*(c.connect() for c in down), return_exceptions=True)
            failed = any(isinstance(result, BaseException) for result in results)
            delay = min(delay * 2, _RECONNECT_MAX_S) if failed else _RECONNECT_MIN_S

    def specs(self) -> dict[str, ToolSpec]:
        merged: dict[str, ToolSpec] = {}
        for connection in self.connections.values():
            merged.update(connection.listing.specs)
        return merged

    async def call(self, server: str, tool: str, arguments: dict[str, Any]) -> tuple[str, Any]:
        """(text, structured content) of calling ``tool`` (its own name) on ``server``."""
        connection = self.connections[server]
        result = await connection.call(tool, arguments)
        return result_of(server, tool, result)

    def status(self) -> list[ServerStatus]:
        return [
            ServerStatus(
                name=c.server.name,
                transport=c.server.transport,
                where=c.server.describe(),
                trusted=c.server.trusted,
                connected=c.connected,
                protocol_version=c.protocol_version,
                tools=tuple(sorted(c.listing.specs)),
                skipped=c.listing.skipped,
                problem=c.problem,
            )
            for c in self.connections.values()
        ]

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.connections.values()))


class ToolCatalogue(Mapping[str, ToolSpec]):
    """The built-in tools and every MCP tool currently listed: what a planner plans with."""

    def __init__(
        self, mcp: McpTools | None = None, builtin: Mapping[str, ToolSpec] = BUILTIN_TOOLS
    ):
        self._mcp = mcp
        self._builtin = builtin

    def _all(self) -> dict[str, ToolSpec]:
        return {**(self._mcp.specs() if self._mcp else {}), **self._builtin}

    def __getitem__(self, name: str) -> ToolSpec:
        spec = self._builtin.get(name)
        if spec is not None:
            return spec
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())
