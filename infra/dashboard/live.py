"""Live updates for open pages, as server-sent events.

The goals list learns that goals changed from one core subscription per dashboard process on
the lifecycle subjects of the log (``agora.events.*.goal_accepted``, …), however many pages are
open, and tells each page at most once per ``interval_s`` (changes meanwhile are one message),
with the log's last sequence then: the page asks for its rows again through ``agora.query``
with that ``min_seq``, so the rows it gets include the change (the views may lag the bus).
A goal's page follows that goal's events from its first (an ordered consumer) and its
``agora.live.<goal_id>.>`` signals (model token deltas), in batches, so a burst of events
costs one redraw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from events.model import Event
from events.subjects import EVENTS_STREAM
from infra.bus.core import CoreBus, Inbound, NatsPyCore
from infra.clients.goals import AgoraClient
from infra.logging import get_logger

__all__ = ["HEARTBEAT_S", "GoalBatch", "GoalsHub", "follow_goal", "goals_changes", "sse"]

log = get_logger("agora.dashboard")
HEARTBEAT_S = 15.0
# What changes a row of the goals list (its status, iterations, score) or what waits for a
# person (the approvals).
LIFECYCLE = (
    "goal_accepted",
    "goal_rejected",
    "goal_completed",
    "goal_failed",
    "goal_cancelled",
    "goal_paused",
    "goal_resumed",
    "goal_queued",
    "goal_dequeued",
    "plan_created",
    "plan_revised",
    "approval_requested",
    "approval_granted",
    "approval_denied",
)


def sse(event: str, data: Any) -> str:
    """One server-sent event: a name and a JSON line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class GoalsHub:
    """Counts lifecycle events seen on the bus; pages wait for the count to move.

    Every goal's lifecycle passes through here while the platform runs, so the subscriptions
    go over ``core``: the dashboard's wire client (``infra.bus.wire``) where it has one, which
    hands each message to ``_seen`` as it is parsed; nats-py's ``Msg`` and callback task per
    message cost most of a busy dashboard's CPU."""

    def __init__(self, nc: NatsClient, core: CoreBus | None = None) -> None:
        self._nc = nc
        self._core: CoreBus = core if core is not None else NatsPyCore(nc)
        self._subs: list[object] = []
        self.version = 0
        self._moved = asyncio.Event()
        self._waiting = 0  # pages waiting for the count to move
        self._log_seq: tuple[int, int] = (-1, 0)  # (version, the log's last seq then)

    async def start(self) -> None:
        for kind in LIFECYCLE:
            self._subs.append(await self._core.subscribe(f"agora.events.*.{kind}", self._seen))

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):  # the connection may be closing already
                await self._core.unsubscribe(sub)

    def _seen(self, _message: Inbound) -> None:
        self.version += 1
        if self._waiting:
            moved, self._moved = self._moved, asyncio.Event()
            moved.set()

    async def newer_than(self, seen: int) -> int:
        while self.version == seen:
            self._waiting += 1
            try:
                await self._moved.wait()
            finally:
                self._waiting -= 1
        return self.version

    async def log_seq(self) -> int:
        """The event log's last sequence, asked once per version however many pages wait (0
        when the server does not say: the page's query then waits for nothing)."""
        version = self.version
        if self._log_seq[0] != version:
            try:
                info = await self._nc.jetstream().stream_info(EVENTS_STREAM)
            except Exception as exc:  # a page then refreshes without min_seq
                log.warning("log_seq_unknown", error=str(exc))
                return 0
            self._log_seq = (version, int(info.state.last_seq))
        return self._log_seq[1]


async def goals_changes(hub: GoalsHub, *, since: int, interval_s: float) -> AsyncIterator[str]:
    """The goals list's stream: ``goals`` when goals changed after version ``since`` (read when
    the page asked, before the stream opens, so no change falls in between), a comment to keep
    it open."""
    seen = since
    yield "retry: 2000\n\n"
    while True:
        try:
            seen = await asyncio.wait_for(hub.newer_than(seen), HEARTBEAT_S)
        except TimeoutError:
            yield ": keep-alive\n\n"
            continue
        yield sse("goals", {"version": seen, "seq": await hub.log_seq()})
        # At most one message per interval: whatever changes meanwhile, the next one says.
        await asyncio.sleep(interval_s)


@dataclass
class GoalBatch:
    """What arrived since the last batch: new events (with the last stream seq), deltas."""

    events: list[Event] = field(default_factory=list)
    last_seq: int = 0
    deltas: list[dict[str, Any]] = field(default_factory=list)


async def follow_goal(
    client: AgoraClient, goal_id: str, *, interval_s: float
) -> AsyncIterator[GoalBatch | None]:
    """The goal's events from its first, and its live deltas, in batches at most every
    ``interval_s``; ``None`` when nothing came for a while (time for a keep-alive)."""
    queue: asyncio.Queue[tuple[int, Event] | dict[str, Any]] = asyncio.Queue()

    async def events() -> None:
        async for seq, event in client.follow_with_seq(goal_id, until_terminal=False):
            await queue.put((seq, event))

    async def delta(msg: Msg) -> None:
        try:
            body = json.loads(msg.data)
        except ValueError:
            return  # not ours to judge: a live signal the page cannot show
        if isinstance(body, dict):
            queue.put_nowait(body)

    follower = asyncio.ensure_future(events())
    sub = await client.nc.subscribe(f"agora.live.{goal_id}.>", cb=delta)
    try:
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
            except TimeoutError:
                if follower.done():
                    follower.result()  # a follower that failed says why
                yield None
                continue
            batch = GoalBatch()
            for item in [first, *_drain(queue)]:
                if isinstance(item, tuple):
                    batch.last_seq, event = item
                    batch.events.append(event)
                else:
                    _merge_delta(batch.deltas, item)
            yield batch
            await asyncio.sleep(interval_s)  # a burst of events is one redraw
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def _merge_delta(deltas: list[dict[str, Any]], delta: dict[str, Any]) -> None:
    """Consecutive deltas of one model call's attempt become one (the page appends text)."""
    text = str(delta.get("delta", ""))
    key = (delta.get("purpose"), delta.get("attempt"))
    if deltas and (deltas[-1]["purpose"], deltas[-1]["attempt"]) == key and not deltas[-1]["done"]:
        last = deltas[-1]
        last["text"] += text
        last["done"] = bool(delta.get("done"))
        last["finish_reason"] = str(delta.get("finish_reason", ""))
        return
    deltas.append(
        {
            "purpose": delta.get("purpose"),
            "attempt": delta.get("attempt"),
            "model": str(delta.get("model", "")),
            "first": delta.get("seq") == 0,
            "text": text,
            "done": bool(delta.get("done")),
            "finish_reason": str(delta.get("finish_reason", "")),
        }
    )


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
