"""Reading goals from the event stream and exporting their traces: one goal, a backfill from a
stream sequence, or a live follower that exports each goal as it ends.

Everything is read through the stream (``AGORA_EVENTS``), never from the projection's file, so
it works from any machine that reaches the bus. A goal's spans are derived from its whole
history each time (``projections.spans``), with ids derived from event ids: exporting a goal a
second time sends the very same spans.

The live follower holds the events of the goals it saw begin, each up to a count and an age
(``infra.traces.held``): a goal that runs on past either has its trace so far exported (its
open steps end at its latest event) and its whole trace read and exported again when it ends.
It reads the stream's events leanly (``projections.span_events``: only what spans need) and,
without content, builds the spans straight from them (``projections.lean_spans``, the same
spans as the timeline's); with content it holds the catalogue's events, whose outputs it
resolves, and maps them through the timeline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from nats.aio.client import Client as NatsClient

from events.codec import decode_event
from events.model import Event
from events.subjects import EVENTS_STREAM, goal_events_filter
from infra.bus.history import read_events
from infra.bus.outputs import OutputStore
from infra.bus.reader import StreamReader
from infra.settings import Settings
from infra.traces.held import HeldGoals
from infra.traces.otlp import TraceTarget
from projections.lean_spans import lean_goal_spans
from projections.span_events import (
    LeanEvent,
    LeanGoalAccepted,
    LeanGoalCancelled,
    LeanGoalCompleted,
    LeanGoalFailed,
    LeanGoalRejected,
    decode_span_event,
)
from projections.spans import goal_spans

__all__ = ["Exported", "TraceExporter"]

# What an event is to a goal's trace, by its exact type: its beginning (from there on the
# follower has seen all of its history), its end, or both (a rejection); other types 0. One
# dictionary look-up per event: two isinstance checks against tuples of classes cost 0.005 ms
# a goal, nearly what decoding its events leanly does (0.006).
_BEGINS, _ENDS = 1, 2
_ROLES: dict[type[LeanEvent], int] = {
    LeanGoalAccepted: _BEGINS,
    LeanGoalRejected: _BEGINS | _ENDS,
    LeanGoalCompleted: _ENDS,
    LeanGoalFailed: _ENDS,
    LeanGoalCancelled: _ENDS,
}
_ALL_EVENTS = "agora.events.>"
# How long a pull waits for new events once caught up; under load it fills meanwhile, so the
# follower reads few, large batches (a trace leaves at most this long after its goal ended).
_LINGER_S = 0.5
_DEFAULTS = Settings()  # the declared defaults (AGORA_TRACE_GOAL_MAX_*)
# What the live follower holds of an event: the lean reading, or with content the catalogue's.
_Held = LeanEvent | Event
# A goal to export: its id, its events (None: read its whole history), and whether it ended.
_ToExport = tuple[str, list[_Held] | None, bool]


@dataclass(frozen=True, slots=True)
class Exported:
    goal_id: str
    spans: int
    ended: bool = True  # False: the trace so far of a goal still running


@dataclass
class TraceExporter:
    nc: NatsClient
    target: TraceTarget
    content: bool = False
    # The most events the live follower holds for one running goal, and for how long.
    max_events: int = _DEFAULTS.trace_goal_max_events
    max_age_s: float = _DEFAULTS.trace_goal_max_age_s
    held: HeldGoals[_Held] = field(init=False)  # what the live follower holds right now

    def __post_init__(self) -> None:
        self.held = HeldGoals[_Held](self.max_events, self.max_age_s)

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
                    goal_id = decode_span_event(payload).goal_id
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

        The follower reads every event anyway, so it holds the events of each goal it saw
        begin and builds the trace from them when the goal ends: no second read of the goal.
        The goals that ended in one batch go to the receiver in one export. A goal held for
        ``max_events`` events or ``max_age_s`` has its trace so far exported and is let go. A
        goal let go, one that began before ``from_seq`` (or one that ends again, re-driven) is
        read in full from the stream when it ends."""
        reader = await StreamReader(
            self.nc,
            EVENTS_STREAM,
            _ALL_EVENTS,
            start_seq=max(1, from_seq),
            linger_s=_LINGER_S,
        ).open()  # its own connection: the follower reads the whole log, as the projector
        last = from_seq - 1
        held = self.held
        content = self.content
        roles = _ROLES
        try:
            while not stop.is_set():
                batch = await reader.next_batch(wait=True)
                now = time.monotonic()
                goals: list[_ToExport] = []
                for seq, payload in zip(batch.seqs, batch.payloads, strict=True):
                    last = seq
                    event = decode_span_event(payload)
                    goal_id = event.goal_id
                    if goal_id.startswith("_"):
                        continue  # the platform's own records
                    role = roles.get(type(event), 0)
                    if role & _BEGINS:
                        held.begin(goal_id, now)
                    let_go = held.add(goal_id, decode_event(payload) if content else event)
                    if role & _ENDS:
                        let_go = let_go or held.end(goal_id)
                        goals.append((goal_id, let_go[1] if let_go else None, True))
                    elif let_go is not None:
                        goals.append((*let_go, False))
                goals += [(*let_go, False) for let_go in held.overdue(now)]
                for done in await self._export(goals):
                    on_goal(done)
        finally:
            await reader.close()
        return last

    async def _export(self, goals: list[_ToExport]) -> list[Exported]:
        """One export of the traces of ``goals``: whole traces, or, for a goal still running,
        its trace so far."""
        if not goals:
            return []
        store = OutputStore(self.nc.jetstream(), threshold=0) if self.content else None
        spans = []
        exported = []
        for goal_id, history, ended in goals:
            if history is None:
                events = [
                    event
                    async for _, event in read_events(
                        self.nc, goal_events_filter(goal_id), resolve=self.content
                    )
                ]
                records = goal_spans(goal_id, events, content=self.content)
            elif store is not None:  # content: the catalogue's events, outputs resolved
                events = await store.resolve_all(cast("list[Event]", history))
                records = goal_spans(goal_id, events, content=True)
            else:  # without content the follower holds lean events only
                records = lean_goal_spans(goal_id, cast("list[LeanEvent]", history))
            spans += records
            exported.append(Exported(goal_id, len(records), ended))
        await asyncio.to_thread(self.target.export, spans)
        return exported
