"""A goal's recorded events with their stream sequences: what a replica reads before deciding.

Replicas of the planner and the executor share their durable consumers, so two of them may act
on one goal at once. Each decides on the goal's history as of a known last sequence and
publishes with that sequence as ``Nats-Expected-Last-Subject-Sequence`` on the goal's subjects
(``EventPublisher(expected_last_seq=...)``): if anything was appended to the goal meanwhile,
the stream refuses the publish, and the replica catches up (``since``) and decides again.

``load`` reads a whole history through the stream reader (one consumer, few round trips).
``since`` reads the few events after a known sequence with one batched ``DIRECT.GET``
(``next_by_subj`` + ``batch``): every event in one round trip, where a ``STREAM.MSG.GET`` per
event cost the planner more CPU than all its decisions. In a cluster a direct get may be
answered by a replica that lags the leader; that costs a refused publish and another read,
never a wrong decision, because the guard itself is checked by the leader.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client as NatsClient

from events.codec import decode_event
from events.errors import AgoraError
from events.model import Event
from events.subjects import EVENTS_STREAM, event_type_filter, goal_events_filter
from infra.bus.outputs import OutputStore
from infra.bus.reader import StreamReader

__all__ = [
    "GoalHistory",
    "History",
    "StreamGoalLog",
    "last_on_subject",
    "read_events",
    "read_types_from_first",
]

_DIRECT_GET = f"$JS.API.DIRECT.GET.{EVENTS_STREAM}"
_BATCH = 256
_NOT_FOUND = "404"
_END_OF_BATCH = "204"


@dataclass(frozen=True, slots=True)
class History:
    events: list[Event]
    # The stream sequence of the goal's last event read (0: none), the optimistic guard.
    last_seq: int


def _reading_store(nc: NatsClient, outputs: OutputStore | None) -> OutputStore:
    """Where references are resolved: the given store, or one for reading only."""
    return outputs if outputs is not None else OutputStore(nc.jetstream(), threshold=0)


@dataclass
class GoalHistory:
    """A goal's events as decided on: references to large outputs resolved."""

    nc: NatsClient
    timeout_s: float = 5.0
    outputs: OutputStore | None = None

    async def load(self, goal_id: str) -> History:
        """Every event of the goal, in stream order."""
        events: list[Event] = []
        last_seq = 0
        filter_subject = goal_events_filter(goal_id)
        async for seq, event in read_events(self.nc, filter_subject, outputs=self.outputs):
            events.append(event)
            last_seq = seq
        return History(events, last_seq)

    async def since(self, goal_id: str, after_seq: int) -> History:
        """The goal's events stored after ``after_seq``, in stream order."""
        events: list[Event] = []
        last_seq = after_seq
        while True:
            batch, pending = await self._direct_get(goal_id, last_seq + 1)
            for seq, event in batch:
                events.append(event)
                last_seq = seq
            if not batch or pending == 0:
                return History(events, last_seq)

    @property
    def _store(self) -> OutputStore:
        if self.outputs is None:
            self.outputs = _reading_store(self.nc, None)
        return self.outputs

    async def _direct_get(self, goal_id: str, from_seq: int) -> tuple[list[tuple[int, Event]], int]:
        """Up to ``_BATCH`` events of the goal from ``from_seq`` on, and how many remain."""
        request = {"seq": from_seq, "next_by_subj": goal_events_filter(goal_id), "batch": _BATCH}
        inbox = self.nc.new_inbox()
        replies = await self.nc.subscribe(inbox)
        found: list[tuple[int, Event]] = []
        try:
            await self.nc.publish(_DIRECT_GET, json.dumps(request).encode(), reply=inbox)
            while True:
                try:
                    msg = await replies.next_msg(timeout=self.timeout_s)
                except nats.errors.TimeoutError as exc:
                    raise AgoraError(f"could not read goal {goal_id}'s events: {exc!r}") from exc
                headers = msg.headers or {}
                status = headers.get("Status")
                if status == _NOT_FOUND:
                    return found, 0
                if status == _END_OF_BATCH:
                    return found, int(headers.get("Nats-Num-Pending", "0"))
                if status is not None:
                    raise AgoraError(
                        f"could not read goal {goal_id}'s events: {status} "
                        f"{headers.get('Description', '')}"
                    )
                event = await self._store.resolve(decode_event(msg.data))
                found.append((int(headers["Nats-Sequence"]), event))
        finally:
            await replies.unsubscribe()


async def read_events(
    nc: NatsClient,
    filter_subject: str,
    *,
    batch: int = 1_000,
    outputs: OutputStore | None = None,
    resolve: bool = True,
    more_filter_subjects: tuple[str, ...] = (),
    start_seq: int = 1,
) -> AsyncIterator[tuple[int, Event]]:
    """Every stored event matching ``filter_subject`` (or one of ``more_filter_subjects``)
    from ``start_seq``, in stream order, with its sequence; references to large outputs
    resolved (from ``outputs``) unless ``resolve`` is False.

    The same reader the projector uses, on this client's connection (``wire=False``): these
    reads are small (one goal's history, memory's observations), not worth a socket of
    their own.
    """
    store = _reading_store(nc, outputs) if resolve else None
    reader = await StreamReader(
        nc,
        EVENTS_STREAM,
        filter_subject,
        start_seq=start_seq,
        batch=batch,
        wire=False,
        more_filter_subjects=more_filter_subjects,
    ).open()
    try:
        while True:
            chunk = await reader.next_batch(wait=False)
            for seq, payload in zip(chunk.seqs, chunk.payloads, strict=True):
                event = decode_event(payload)
                yield seq, event if store is None else await store.resolve(event)
            if not chunk.seqs or chunk.pending == 0:
                return
    finally:
        await reader.close()


@dataclass
class StreamGoalLog:
    """A goal's recorded history, read from the event stream, references resolved."""

    nc: NatsClient
    outputs: OutputStore | None = None

    async def load(self, goal_id: str) -> list[Event]:
        filter_subject = goal_events_filter(goal_id)
        return [e async for _, e in read_events(self.nc, filter_subject, outputs=self.outputs)]


async def last_on_subject(nc: NatsClient, subject: str) -> tuple[int, str] | None:
    """The stream sequence and ``kind`` (a memory item's, else "") of ``subject``'s last
    event, or None when the subject has none."""
    import nats.js.errors

    try:
        msg = await nc.jetstream().get_last_msg(EVENTS_STREAM, subject)
    except nats.js.errors.NotFoundError:
        return None
    event = decode_event(msg.data or b"")
    return int(msg.seq or 0), str(getattr(event, "kind", ""))


async def read_types_from_first(
    nc: NatsClient, event_types: Sequence[str], *, starting_at: Sequence[str]
) -> list[Event] | None:
    """Every goal's events of ``event_types``, in stream order, from the first event of any
    of the types ``starting_at`` on (what precedes it cannot matter to the caller); None
    when the log holds none of those. References to large outputs are left unresolved."""
    import nats.js.errors

    firsts: list[int] = []
    for event_type in starting_at:
        try:
            msg = await nc.jetstream().get_msg(
                EVENTS_STREAM, seq=1, subject=event_type_filter(event_type), next=True
            )
        except nats.js.errors.NotFoundError:
            continue
        firsts.append(int(msg.seq or 0))
    if not firsts:
        return None
    first, *more = (event_type_filter(event_type) for event_type in event_types)
    return [
        event
        async for _, event in read_events(
            nc, first, more_filter_subjects=tuple(more), start_seq=min(firsts), resolve=False
        )
    ]
