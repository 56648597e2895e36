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

from events.catalog import GoalAccepted, GoalCancelled, GoalCompleted, GoalFailed, GoalRejected
from events.codec import decode_event
from events.model import Event
from events.subjects import EVENTS_STREAM, goal_events_filter
from infra.bus.history import read_events
from infra.bus.outputs import OutputStore
from infra.bus.reader import StreamReader
from infra.traces.otlp import TraceTarget
from projections.spans import goal_spans

__all__ = ["Exported", "TraceExporter"]

_ENDS = (GoalCompleted, GoalFailed, GoalRejected, GoalCancelled)
# A goal's first event: from one of these on, the follower has seen all of its history.
_BEGINNINGS = (GoalAccepted, GoalRejected)
_ALL_EVENTS = "agora.events.>"
# How long a pull waits for new events once caught up; under load it fills meanwhile, so the
# follower reads few, large batches (a trace leaves at most this long after its goal ended).
_LINGER_S = 0.5


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
        ``stop``; the last sequence read.

        The follower reads every event anyway, so it keeps the events of each goal it saw
        begin and builds the trace from them when the goal ends: no second read of the goal.
        The goals that ended in one batch go to the receiver in one export. A goal that began
        before ``from_seq`` (or ends again, re-driven) is read in full from the stream."""
        reader = await StreamReader(
            self.nc,
            EVENTS_STREAM,
            _ALL_EVENTS,
            start_seq=max(1, from_seq),
            linger_s=_LINGER_S,
        ).open()  # its own connection: the follower reads the whole log, as the projector
        last = from_seq - 1
        running: dict[str, list[Event]] = {}
        try:
            while not stop.is_set():
                batch = await reader.next_batch(wait=True)
                ended: list[tuple[str, list[Event] | None]] = []
                for seq, payload in zip(batch.seqs, batch.payloads, strict=True):
                    last = seq
                    event = decode_event(payload)
                    goal_id = event.goal_id
                    if goal_id.startswith("_"):
                        continue  # the platform's own records
                    if isinstance(event, _BEGINNINGS) and goal_id not in running:
                        running[goal_id] = []
                    if (history := running.get(goal_id)) is not None:
                        history.append(event)
                    if isinstance(event, _ENDS):
                        ended.append((goal_id, running.pop(goal_id, None)))
                for done in await self._export_ended(ended):
                    on_goal(done)
        finally:
            await reader.close()
        return last

    async def _export_ended(self, ended: list[tuple[str, list[Event] | None]]) -> list[Exported]:
        """One export of the traces of the goals that ended (their events, or None: read the
        goal's whole history)."""
        if not ended:
            return []
        store = OutputStore(self.nc.jetstream(), threshold=0) if self.content else None
        spans = []
        exported = []
        for goal_id, history in ended:
            if history is None:
                events = [
                    event
                    async for _, event in read_events(
                        self.nc, goal_events_filter(goal_id), resolve=self.content
                    )
                ]
            else:
                events = await store.resolve_all(history) if store is not None else history
            records = goal_spans(goal_id, events, content=self.content)
            spans += records
            exported.append(Exported(goal_id, len(records)))
        await asyncio.to_thread(self.target.export, spans)
        return exported
