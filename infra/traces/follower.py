"""Reading goals from the event stream and exporting their traces: one goal, a backfill from a
stream sequence, or a live follower that exports each goal as it ends.

Everything is read through the stream (``AGORA_EVENTS``), never from the projection's file, so
it works from any machine that reaches the bus. A goal's spans are derived from its whole
history each time (``projections.spans``), with ids derived from event ids: exporting a goal a
second time sends the very same spans.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient

from events.catalog import GoalCancelled, GoalCompleted, GoalFailed, GoalRejected
from events.codec import decode_event
from events.subjects import EVENTS_STREAM, goal_events_filter
from infra.bus.history import read_events
from infra.bus.reader import StreamReader
from infra.traces.otlp import TraceTarget
from projections.spans import goal_spans

__all__ = ["Exported", "TraceExporter"]

_ENDS = (GoalCompleted, GoalFailed, GoalRejected, GoalCancelled)
_ALL_EVENTS = "agora.events.>"


@dataclass(frozen=True, slots=True)
class Exported:
    goal_id: str
    spans: int


@dataclass
class TraceExporter:
    nc: NatsClient
    target: TraceTarget
    content: bool = False

    async def export_goal(self, goal_id: str) -> Exported:
        """Every span of ``goal_id``'s trace, from its whole history."""
        # Content needs the outputs in full; without it, previews are enough.
        events = [
            event
            async for _, event in read_events(
                self.nc, goal_events_filter(goal_id), resolve=self.content
            )
        ]
        spans = goal_spans(goal_id, events, content=self.content)
        await asyncio.to_thread(self.target.export, spans)
        return Exported(goal_id, len(spans))

    async def goals_since(self, since_seq: int) -> tuple[list[str], int]:
        """The goals with an event at ``since_seq`` or later (first seen first), and the last
        sequence read. The platform's own records (goal ids starting with ``_``) are left out."""
        reader = await StreamReader(
            self.nc, EVENTS_STREAM, _ALL_EVENTS, start_seq=max(1, since_seq), wire=False
        ).open()
        seen: dict[str, None] = {}
        last = since_seq - 1
        try:
            while True:
                batch = await reader.next_batch(wait=False)
                for seq, payload in zip(batch.seqs, batch.payloads, strict=True):
                    goal_id = decode_event(payload).goal_id
                    if not goal_id.startswith("_"):
                        seen.setdefault(goal_id, None)
                    last = seq
                if not batch.seqs or batch.pending == 0:
                    return list(seen), last
        finally:
            await reader.close()

    async def backfill(
        self, since_seq: int, on_goal: Callable[[Exported], None] = lambda _: None
    ) -> tuple[list[Exported], int]:
        """Export every goal with an event from ``since_seq`` on (whole traces)."""
        goal_ids, last = await self.goals_since(since_seq)
        exported = []
        for goal_id in goal_ids:
            done = await self.export_goal(goal_id)
            on_goal(done)
            exported.append(done)
        return exported, last

    async def follow(
        self,
        from_seq: int,
        stop: asyncio.Event,
        on_goal: Callable[[Exported], None] = lambda _: None,
    ) -> int:
        """Export each goal whose end is recorded at ``from_seq`` or later, as it ends, until
        ``stop``; the last sequence read."""
        reader = await StreamReader(
            self.nc, EVENTS_STREAM, _ALL_EVENTS, start_seq=max(1, from_seq), wire=False
        ).open()
        last = from_seq - 1
        try:
            while not stop.is_set():
                batch = await reader.next_batch(wait=True)
                for seq, payload in zip(batch.seqs, batch.payloads, strict=True):
                    event = decode_event(payload)
                    last = seq
                    if isinstance(event, _ENDS) and not event.goal_id.startswith("_"):
                        on_goal(await self.export_goal(event.goal_id))
        finally:
            await reader.close()
        return last
