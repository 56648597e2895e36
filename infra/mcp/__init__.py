"""MCP servers' tools for agora (docs/mcp.md): configuration, connections, the catalogue.

:class:`McpTools` connects every configured server with the official SDK (``mcp``), keeps
each one's latest tool listing as tool specs (``<server>.<tool>``, their JSON Schemas), and
calls them. Remote A2A agents (docs/a2a.md) are connections of the same shape, each offering
one tool, ``a2a.<agent>`` (:mod:`infra.a2a_client`). The executor is the only process that
connects: it registers the tools in its registry and records each listing as a
``tools_listed`` event, from which planners and ``agora tools`` know them
(:mod:`infra.mcp.catalogue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from nats.aio.client import Client as NatsClient

from events.catalog import ListedTool, ToolsListed
from events.errors import ToolError
from events.ids import derive_id
from events.model import Event
from events.subjects import tools_goal_id
from infra.logging import get_logger
from infra.mcp.catalogue import last_listing
from infra.mcp.config import McpServer, parse_servers
from infra.mcp.listing import Listing

if TYPE_CHECKING:
    from infra.a2a_client.config import A2AAgent

    # The SDK behind a connection costs ~40 MB and ~0.4 s to import: only a process that
    # connects to a configured server loads it (a planner reading listings never does).
    from infra.mcp.connection import McpConnection

__all__ = [
    "ListingRecorder",
    "McpConnection",
    "McpServer",
    "McpTools",
    "ToolConnection",
    "ToolSource",
    "listing_event",
    "parse_servers",
    "same_listing",
]

log = get_logger("agora.mcp")


def __getattr__(name: str) -> object:
    if name == "McpConnection":
        from infra.mcp.connection import McpConnection

        return McpConnection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# How often servers that are not connected are tried again, at most.
_RECONNECT_MIN_S = 1.0
_RECONNECT_MAX_S = 30.0
# How long the executor waits for its servers at start before it takes tasks anyway.
DEFAULT_START_WAIT_S = 10.0
# How often connected servers' tool sets are listed again.
_RELIST_S = 60.0


class ToolSource(Protocol):
    """Where listed tools come from, as a listing records it: an MCP server, an A2A agent."""

    @property
    def name(self) -> str: ...
    @property
    def origin(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def trusted(self) -> bool: ...
    def describe(self) -> str: ...


class ToolConnection(Protocol):
    """A connection that lists tools and calls them: an MCP server's, an A2A agent's."""

    @property
    def server(self) -> ToolSource: ...
    @property
    def listing(self) -> Listing: ...
    @property
    def protocol_version(self) -> str | None: ...
    @property
    def problem(self) -> str | None: ...
    @property
    def connected(self) -> bool: ...
    async def connect(self) -> None: ...
    async def run(self, tool: str, arguments: dict[str, Any]) -> tuple[str, Any]:
        """(text, structured content) of calling ``tool`` (its registered name)."""
        ...

    def relist_soon(self) -> None: ...
    async def close(self) -> None: ...


class McpTools:
    """Every configured server's and agent's connection. ``on_listing(connection)`` hears
    each change of a connection's tool set (its first listing included) and a first
    connection that failed."""

    def __init__(
        self,
        servers: Sequence[McpServer],
        on_listing: Callable[[ToolConnection], Awaitable[None]] | None = None,
        *,
        agents: Sequence[A2AAgent] = (),
    ) -> None:
        self._on_listing = on_listing
        self._background: set[asyncio.Task[None]] = set()
        self.connections: dict[str, ToolConnection] = {}
        if servers:
            from infra.mcp.connection import McpConnection

            for server in servers:
                self.connections[server.name] = McpConnection(server, on_listing=on_listing)
        if agents:
            from infra.a2a_client.connection import A2AConnection

            for agent in agents:
                self.connections[agent.name] = A2AConnection(agent, on_listing=on_listing)

    async def start(self, wait_s: float = DEFAULT_START_WAIT_S) -> None:
        """Connect every server, waiting at most ``wait_s`` for them: a server that hangs
        must not keep the executor from its other tools. One still connecting then goes on
        in the background."""
        attempts = [
            asyncio.create_task(self._first_connect(connection))
            for connection in self.connections.values()
        ]
        if not attempts:
            return
        _, pending = await asyncio.wait(attempts, timeout=wait_s)
        for attempt in pending:
            self._background.add(attempt)
            attempt.add_done_callback(self._background.discard)
        if pending:
            slow = [c.server.name for c in self.connections.values() if not c.connected]
            log.warning("mcp_servers_slow_to_connect", servers=slow, waited_s=wait_s)

    async def _first_connect(self, connection: ToolConnection) -> None:
        """Connect; a server that cannot be reached is logged, recorded (its problem) and
        tried again by ``keep_connected``."""
        try:
            await connection.connect()
        except ToolError as exc:
            log.warning("mcp_server_unavailable", server=connection.server.name, error=str(exc))
            if self._on_listing is not None:
                with contextlib.suppress(Exception):
                    await self._on_listing(connection)
            return
        log.info(
            "mcp_server_connected",
            server=connection.server.name,
            protocol_version=connection.protocol_version,
            tools=sorted(connection.listing.specs),
        )

    async def keep_connected(self, stop: asyncio.Event) -> None:
        """Until ``stop``: connect the servers that are not connected, with backoff."""
        delay = _RECONNECT_MIN_S
        relisted = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            if time.monotonic() - relisted >= _RELIST_S:
                # Servers of the 2026 protocol announce changes only on streams agora does not
                # hold open: their tool sets are listed again now and then.
                relisted = time.monotonic()
                for connection in self.connections.values():
                    connection.relist_soon()
            down = [c for c in self.connections.values() if not c.connected]
            results = await asyncio.gather(*(c.connect() for c in down), return_exceptions=True)
            failed = any(isinstance(result, BaseException) for result in results)
            delay = min(delay * 2, _RECONNECT_MAX_S) if failed else _RECONNECT_MIN_S

    async def call(self, server: str, tool: str, arguments: dict[str, Any]) -> tuple[str, Any]:
        """(text, structured content) of calling ``tool`` (its registered name) on ``server``."""
        return await self.connections[server].run(tool, arguments)

    async def close(self) -> None:
        for attempt in list(self._background):
            attempt.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in self.connections.values()))


def listing_event(
    connection: ToolConnection, *, previous_id: str | None, producer: str, now: datetime
) -> ToolsListed:
    """``connection``'s current listing (or why there is none) as a ``tools_listed`` event.

    Its id is derived from the listing's content and the listing it follows, so executor
    replicas that list the same tools record it once, and a set that changes back is
    recorded again.
    """
    server = connection.server
    tools = tuple(
        ListedTool(
            name=spec.name,
            description=spec.description,
            input_schema=spec.json_schema(),
            timeout_s=spec.default_timeout_s,
        )
        for spec in sorted(connection.listing.specs.values(), key=lambda spec: spec.name)
    )
    content = {
        "tools": [(t.name, t.description, t.input_schema, t.timeout_s) for t in tools],
        "skipped": connection.listing.skipped,
        "problem": connection.problem if not tools else None,
        "trusted": server.trusted,
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    goal_id = tools_goal_id(server.name)
    return ToolsListed(
        event_id=derive_id("executor", goal_id, "tools_listed", digest, previous_id),
        goal_id=goal_id,
        occurred_at=now,
        causation_id=previous_id,
        correlation_id=goal_id,
        producer=producer,
        server=server.name,
        origin=server.origin,
        transport=server.transport,
        where=server.describe(),
        trusted=server.trusted,
        protocol_version=connection.protocol_version,
        tools=tools,
        skipped=connection.listing.skipped,
        problem=connection.problem if not tools else None,
    )


def same_listing(a: ToolsListed, b: ToolsListed) -> bool:
    """Whether two listings say the same (when and by whom aside)."""
    fields = ("server", "transport", "where", "trusted", "protocol_version", "tools", "skipped")
    return all(getattr(a, f) == getattr(b, f) for f in fields) and a.problem == b.problem


class ListingRecorder:
    """Records a server's listing as ``tools_listed`` when it says something new.

    The first time it meets a server it reads the server's last recorded listing: a
    restarted executor (or a replica) that lists the same tools records nothing, and a
    changed set follows on from what is recorded.
    """

    def __init__(
        self,
        nc: NatsClient,
        publish: Callable[[Sequence[Event]], Awaitable[object]],
        *,
        producer: str,
        now: Callable[[], datetime],
    ) -> None:
        self._nc = nc
        self._publish = publish
        self._producer = producer
        self._now = now
        self._recorded: dict[str, str] = {}  # server -> the id of its last recorded listing

    async def record(self, connection: ToolConnection) -> None:
        name = connection.server.name
        if name not in self._recorded:
            last = await last_listing(self._nc, name)
            if last is not None:
                self._recorded[name] = last.event_id
                current = listing_event(connection, previous_id=None, producer="", now=self._now())
                if same_listing(last, current):
                    return
        event = listing_event(
            connection,
            previous_id=self._recorded.get(name),
            producer=self._producer,
            now=self._now(),
        )
        await self._publish([event])
        self._recorded[name] = event.event_id
