"""The tool catalogue a planner replica keeps: built-in tools and every MCP server's latest
``tools_listed``, read from the log at start and kept current by a doorbell.

The executor is the only process that connects to MCP servers; it records what each one
lists. Every planner replica validates intake and plans against that record, so a goal names
only tools an executor actually offers, and ``agora rerun`` can rebuild the catalogue a goal
was planned with from the same events.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from events.catalog import ToolsListed
from events.codec import decode_event
from events.subjects import EVENTS_STREAM, TOOLS_LISTED_FILTER, event_subject, tools_goal_id
from events.tool_catalogue import tools_of
from events.tools import BUILTIN_TOOLS, ToolSpec
from infra.bus.history import read_events
from infra.logging import get_logger

__all__ = ["ListedTools", "last_listing", "read_listings"]

log = get_logger("agora.mcp")

_REFRESH_INTERVAL_S = 0.5


async def read_listings(nc: NatsClient, *, before_seq: int | None = None) -> list[ToolsListed]:
    """Every recorded listing in stream order (only those stored before ``before_seq``)."""
    return [
        event
        async for seq, event in read_events(nc, TOOLS_LISTED_FILTER)
        if isinstance(event, ToolsListed) and (before_seq is None or seq < before_seq)
    ]


async def last_listing(nc: NatsClient, server: str) -> ToolsListed | None:
    """The latest recorded listing of ``server``, or None when there is none."""
    import nats.js.errors

    subject = event_subject(tools_goal_id(server), "tools_listed")
    try:
        stored = await nc.jetstream().get_last_msg(EVENTS_STREAM, subject)
    except nats.js.errors.NotFoundError:
        return None
    event = decode_event(stored.data or b"")
    return event if isinstance(event, ToolsListed) else None


class ListedTools(Mapping[str, ToolSpec]):
    """Tool name -> spec: the built-in tools and the latest listed tools of every server."""

    def __init__(self, builtin: Mapping[str, ToolSpec] = BUILTIN_TOOLS) -> None:
        self._builtin = dict(builtin)
        self._latest: dict[str, tuple[int, ToolsListed]] = {}
        self._tools: dict[str, ToolSpec] = dict(builtin)
        self._subscription: Subscription | None = None
        self._nc: NatsClient | None = None
        self._refreshed_at = -_REFRESH_INTERVAL_S

    def __getitem__(self, name: str) -> ToolSpec:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def listings(self) -> list[ToolsListed]:
        return [listing for _, listing in self._latest.values()]

    def apply(self, seq: int, listing: ToolsListed) -> None:
        """Take ``listing`` (stored at ``seq``) unless a later one of its server is known."""
        known = self._latest.get(listing.server)
        if known is not None and known[0] >= seq:
            return
        self._latest[listing.server] = (seq, listing)
        tools = dict(self._builtin)
        for _, latest in sorted(self._latest.values(), key=lambda item: item[1].server):
            tools.update({k: v for k, v in tools_of(latest).items() if k not in self._builtin})
        self._tools = tools
        log.info("tools_catalogue_updated", server=listing.server, tools=len(listing.tools))

    async def start(self, nc: NatsClient) -> None:
        """Follow new listings (first, so none is missed), then read the recorded ones."""

        async def rung(msg: Msg) -> None:
            # The doorbell only says which server; the stream says what its latest listing is.
            try:
                stored = await nc.jetstream().get_last_msg(EVENTS_STREAM, msg.subject)
            except Exception as exc:
                log.warning("tools_listing_unread", subject=msg.subject, error=str(exc))
                return
            event = decode_event(stored.data or b"")
            if isinstance(event, ToolsListed):
                self.apply(int(stored.seq or 0), event)

        self._nc = nc
        self._subscription = await nc.subscribe(TOOLS_LISTED_FILTER, cb=rung)
        await self.refresh()

    async def refresh(self) -> None:
        """Read every recorded listing again (a few events: one per change of a server).

        At most once per ``_REFRESH_INTERVAL_S``: commands naming unknown tools are anyone's
        to send, and must not each cost a read of the log.
        """
        assert self._nc is not None, "start() first"
        now = time.monotonic()
        if now - self._refreshed_at < _REFRESH_INTERVAL_S:
            return
        self._refreshed_at = now
        async for seq, event in read_events(self._nc, TOOLS_LISTED_FILTER):
            if isinstance(event, ToolsListed):
                self.apply(seq, event)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None
