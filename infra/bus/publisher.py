"""Appending events to AGORA_EVENTS: ordered, deduplicated by event id, optionally guarded."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client as NatsClient
from nats.js.api import PubAck

from events.codec import encode
from events.errors import AgoraError, ConcurrentWriteError, EventTooLargeError
from events.errors import GoalExistsError as GoalIdTakenError
from events.model import Event, event_type
from events.subjects import EVENTS_STREAM, event_subject, goal_events_filter
from infra.bus.core import CoreBus, Inbound, NatsPyCore
from infra.bus.group_commit import GroupCommit
from infra.bus.outputs import OutputStore
from infra.settings import MiB

__all__ = [
    "MSG_ID",
    "WRONG_LAST_SEQUENCE",
    "EventPublisher",
    "Fence",
    "FenceRefusedError",
    "GoalChangedError",
    "GoalExistsError",
    "PublishRejectedError",
]

MSG_ID = "Nats-Msg-Id"


class PublishRejectedError(AgoraError):
    """The stream refused an event; ``err_code`` is JetStream's (10071: wrong last sequence)."""

    def __init__(self, description: str, err_code: int | None) -> None:
        super().__init__(f"the event stream refused a publish: {description}")
        self.err_code = err_code


class GoalExistsError(PublishRejectedError, GoalIdTakenError):
    """A publish guarded with ``new_goal=True`` found events of that goal already stored."""


class FenceRefusedError(PublishRejectedError):
    """A fenced publish was refused: the writer's lease is no longer the latest."""


@dataclass(frozen=True, slots=True)
class Fence:
    """Store a message only while ``subject``'s last message is at ``seq`` (a writer's lease)."""

    seq: int
    subject: str

    def headers(self) -> dict[str, str]:
        return {
            "Nats-Expected-Last-Subject-Sequence": str(self.seq),
            "Nats-Expected-Last-Subject-Sequence-Subject": self.subject,
        }


class GoalChangedError(PublishRejectedError, ConcurrentWriteError):
    """A publish guarded with ``expected_last_seq`` found a newer event of the goal stored."""


WRONG_LAST_SEQUENCE = 10071
# A replicated stream refuses a guarded message while an earlier one guarded on the same
# subject is still being replicated (proposed, not yet applied).
GUARD_IN_PROCESS = 10164
# An atomic batch with a message id already stored: the whole batch was stored before.
BATCH_DUPLICATE = 10201
MESSAGE_TOO_LARGE = 10054
# The server's limit on one atomic batch's messages.
_MAX_BATCH = 1000
# Room kept for an event's headers (id, expected stream, a guard) under the size limit.
_HEADROOM = 512
# A sent event's reply token and the future its acknowledgement settles.
_Pending = tuple[str, "asyncio.Future[PubAck]"]
# An event as it is written, with its encoded bytes.
_Outgoing = tuple[Event, bytes]


def _settled(pending: list[_Pending]) -> bool:
    return all(future.done() for _, future in pending)


def _refused_alone(exc: Exception) -> bool:
    """A refusal of a grouped batch that may be one call's doing, not the fence's."""
    if isinstance(exc, PublishRejectedError):
        return exc.err_code not in (WRONG_LAST_SEQUENCE, GUARD_IN_PROCESS)
    return isinstance(exc, EventTooLargeError)


class _AckError(msgspec.Struct, kw_only=True):
    err_code: int | None = None
    description: str | None = None


class _Ack(msgspec.Struct, kw_only=True):
    """A JetStream publish acknowledgement, or its refusal (``error``)."""

    stream: str = ""
    seq: int = 0
    domain: str | None = None
    duplicate: bool | None = None
    batch: str | None = None  # an atomic batch's id and size (its commit's acknowledgement)
    count: int | None = None
    error: _AckError | None = None


_decode_ack = msgspec.json.Decoder(_Ack).decode


class EventPublisher:
    """Appends events to AGORA_EVENTS, in order, each with ``Nats-Msg-Id`` = its event id.

    All of one call's events are sent back to back and their acknowledgements awaited together:
    one round trip instead of one per event. Order is kept, because the stream stores a
    connection's messages in the order they were sent. The call returns only once every
    event is acknowledged, so the caller may then ack its input. A duplicate (the same id
    inside the window) is acknowledged as such and not stored.

    It publishes over ``nc``'s hot path (a :class:`~infra.bus.core.CoreBus`, or a nats-py
    client). Replies are matched on our own inbox rather than through nats-py's
    ``publish_async``, whose futures never complete when the server rejects a message (2.16:
    the error is raised inside its reply callback instead of being set on the future).

    With ``outputs``, an event's large outputs are stored there first and the event carries
    references instead (infra/bus/outputs.py). An event still over ``max_bytes`` raises
    :class:`EventTooLargeError` before anything of the call is sent: it can never be written,
    so retrying is pointless and the caller decides what to write instead.
    """

    def __init__(
        self,
        nc: NatsClient | CoreBus,
        timeout_s: float = 10.0,
        *,
        outputs: OutputStore | None = None,
        max_bytes: int = 1 * MiB,
        atomic_fences: bool = False,
    ) -> None:
        self.core: CoreBus = NatsPyCore(nc) if isinstance(nc, NatsClient) else nc
        self.timeout_s = timeout_s
        self.outputs = outputs
        self.max_bytes = max_bytes
        # On a replicated stream two messages fenced on one subject cannot be in flight at once
        # (the second is refused while the first replicates): fenced calls go out one at a time,
        # each as one atomic batch (nats-server 2.12+, the stream's allow_atomic).
        self.atomic_fences = atomic_fences
        self._fenced: GroupCommit[_Outgoing, Fence] = GroupCommit(
            self._atomic,
            send_alone=self._atomic_alone,
            max_items=_MAX_BATCH,
            refused_alone=_refused_alone,
        )
        self._batch_prefix = os.urandom(8).hex()
        self._batches = 0
        self._prefix = ""
        self._waiting: dict[str, asyncio.Future[PubAck]] = {}
        self._types: dict[str, str] = {}  # reply token -> the event type it acknowledges
        self._next = 0
        # Each call's deadline and its pending replies, in the order sent: one sweep timer
        # fails the overdue ones, instead of an asyncio.timeout (a timer, two getpid system
        # calls) per call.
        self._deadlines: deque[tuple[float, list[_Pending]]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(
        self,
        events: Sequence[Event],
        *,
        new_goal: bool = False,
        expected_last_seq: int | None = None,
        fence: Fence | None = None,
    ) -> list[PubAck]:
        """Publish ``events``. ``new_goal``: store the first only if its goal has no events yet
        (atomically, at the stream), raising ``GoalExistsError`` and sending nothing else if it has.
        ``expected_last_seq``: the same guard with the goal's last known sequence (optimistic
        concurrency between replicas), raising ``GoalChangedError``. ``fence``: every event is
        stored only if ``fence.subject``'s last message is still at ``fence.seq`` (the writer's
        lease), all sent back to back in one round trip; ``FenceRefusedError`` otherwise.
        """
        if not events:
            return []
        outgoing = [await self._offloaded(event) for event in events]
        if not self._prefix:
            self._loop = asyncio.get_running_loop()
            self._prefix = self.core.new_inbox()
            await self.core.subscribe(f"{self._prefix}.*", self._on_reply)
        if fence is not None:
            try:
                if self.atomic_fences:
                    return await self._fenced(outgoing, fence)
                headers = fence.headers()
                return await self._settle([await self._send(out, headers) for out in outgoing])
            except PublishRejectedError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    raise FenceRefusedError(
                        f"the lease at {fence.subject} moved past {fence.seq}", exc.err_code
                    ) from None
                raise
        acks: list[PubAck] = []
        rest = list(outgoing)
        if new_goal or expected_last_seq is not None:
            first_out = rest.pop(0)
            first = first_out[0]
            guard = {
                "Nats-Expected-Last-Subject-Sequence": str(expected_last_seq or 0),
                "Nats-Expected-Last-Subject-Sequence-Subject": goal_events_filter(first.goal_id),
            }
            try:
                acks += await self._settle([await self._send(first_out, guard)])
            except PublishRejectedError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE and new_goal:
                    raise GoalExistsError(f"goal {first.goal_id} exists", exc.err_code) from None
                if exc.err_code in (WRONG_LAST_SEQUENCE, GUARD_IN_PROCESS):
                    raise GoalChangedError(
                        f"goal {first.goal_id} has events after {expected_last_seq}", exc.err_code
                    ) from None
                raise
        return acks + await self._settle([await self._send(out) for out in rest])

    async def _atomic(self, outgoing: Sequence[_Outgoing], fence: Fence) -> list[PubAck]:
        """``outgoing`` fenced, in atomic batches: all of a batch stored, or none of it. Only
        each batch's commit is acknowledged; its events' sequences follow from the commit's."""
        acks: list[PubAck] = []
        for start in range(0, len(outgoing), _MAX_BATCH):
            chunk = outgoing[start : start + _MAX_BATCH]
            self._batches += 1
            batch = {**fence.headers(), "Nats-Batch-Id": f"{self._batch_prefix}-{self._batches}"}
            for n, out in enumerate(chunk[:-1], 1):
                await self._send_unanswered(out, {**batch, "Nats-Batch-Sequence": str(n)})
            commit = {**batch, "Nats-Batch-Sequence": str(len(chunk)), "Nats-Batch-Commit": "1"}
            [ack] = await self._settle([await self._send(chunk[-1], commit)])
            first = ack.seq - len(chunk) + 1
            acks += [PubAck(stream=ack.stream, seq=first + n) for n in range(len(chunk))]
        return acks

    async def _atomic_alone(self, outgoing: Sequence[_Outgoing], fence: Fence) -> list[PubAck]:
        """One call's atomic batch; refused as a duplicate, it was stored before (a resend
        whose acknowledgement was lost): batches are stored whole."""
        try:
            return await self._atomic(outgoing, fence)
        except PublishRejectedError as exc:
            if exc.err_code != BATCH_DUPLICATE or len(outgoing) > _MAX_BATCH:
                raise
            return [PubAck(stream=EVENTS_STREAM, seq=0, duplicate=True) for _ in outgoing]

    async def _offloaded(self, event: Event) -> _Outgoing:
        """``event`` as it is written, and its bytes (encoded once): large outputs stored
        apart; too large still: raise."""
        payload = encode(event)
        # An output over the threshold makes the encoded event larger still (JSON never writes
        # a string in fewer bytes than its UTF-8), so only a larger event can need offloading.
        if self.outputs is not None and len(payload) > self.outputs.threshold:
            offloaded = await self.outputs.offload(event)
            if offloaded is not event:
                event, payload = offloaded, encode(offloaded)
        # The stream's limit counts the headers too (the guards add at most ~300 bytes).
        size = len(payload) + _HEADROOM
        limit = min(self.max_bytes, self.core.max_payload or self.max_bytes)
        if size > limit:
            raise EventTooLargeError(event_type(event), size - _HEADROOM, limit - _HEADROOM)
        return event, payload

    async def _send(self, outgoing: _Outgoing, extra: dict[str, str] | None = None) -> _Pending:
        event, payload = outgoing
        self._next += 1
        token = str(self._next)
        assert self._loop is not None
        future: asyncio.Future[PubAck] = self._loop.create_future()
        self._waiting[token] = future
        self._types[token] = event_type(event)
        await self.core.publish(
            event_subject(event.goal_id, event_type(event)),
            payload,
            reply=f"{self._prefix}.{token}",
            headers={
                MSG_ID: event.event_id,
                "Nats-Expected-Stream": EVENTS_STREAM,
                **(extra or {}),
            },
        )
        return token, future

    async def _send_unanswered(self, outgoing: _Outgoing, extra: dict[str, str]) -> None:
        """A message of an atomic batch before its commit: only the commit is answered."""
        event, payload = outgoing
        await self.core.publish(
            event_subject(event.goal_id, event_type(event)),
            payload,
            headers={MSG_ID: event.event_id, "Nats-Expected-Stream": EVENTS_STREAM, **extra},
        )

    async def _settle(self, pending: list[_Pending]) -> list[PubAck]:
        if not pending:
            return []
        assert self._loop is not None
        self._deadlines.append((self._loop.time() + self.timeout_s, pending))
        if self._sweep is None:
            self._arm_sweep()
        try:
            return [await future for _, future in pending]
        finally:
            # Only this call's own replies: scanning every caller's (hundreds under load) on
            # each call made settling cost grow with concurrency.
            for token, future in pending:
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # retrieved: a later rejection is not logged as lost
                self._waiting.pop(token, None)
                self._types.pop(token, None)
            # Calls mostly settle in the order sent: what settled leaves the deadlines here.
            deadlines = self._deadlines
            while deadlines and _settled(deadlines[0][1]):
                deadlines.popleft()

    def _arm_sweep(self) -> None:
        assert self._loop is not None
        self._sweep = self._loop.call_later(self.timeout_s / 4, self._fail_overdue)

    def _fail_overdue(self) -> None:
        """Every quarter of the timeout: the calls whose acknowledgements are overdue fail
        (so a call waits at most 1.25 times the timeout). Disarmed while nothing waits."""
        assert self._loop is not None
        self._sweep = None
        now, deadlines = self._loop.time(), self._deadlines
        while deadlines and (deadlines[0][0] <= now or _settled(deadlines[0][1])):
            _, pending = deadlines.popleft()
            overdue = AgoraError(
                f"the event stream did not acknowledge {len(pending)} event(s) "
                f"within {self.timeout_s}s"
            )
            for _, future in pending:
                if not future.done():
                    future.set_exception(overdue)
        if deadlines:
            self._arm_sweep()

    def _on_reply(self, msg: Inbound) -> None:
        token = msg.subject.rsplit(".", 1)[-1]
        future = self._waiting.get(token)
        if future is None or future.done():
            return
        if msg.headers.get("Status") == "503":
            future.set_exception(
                AgoraError("no stream answers on agora.events (is it provisioned?)")
            )
            return
        try:
            reply = _decode_ack(msg.data)
        except msgspec.DecodeError:
            future.set_exception(
                AgoraError(f"the stream's acknowledgement is not one: {msg.data[:200]!r}")
            )
            return
        error = reply.error
        if error is not None and error.err_code == MESSAGE_TOO_LARGE:
            # Over the stream's own limit (a stream configured smaller than max_bytes).
            kind = self._types.get(token, "an event")
            future.set_exception(EventTooLargeError(kind, None, self.max_bytes))
        elif error is not None:
            future.set_exception(PublishRejectedError(str(error.description), error.err_code))
        else:
            future.set_result(
                PubAck(
                    stream=reply.stream,
                    seq=reply.seq,
                    domain=reply.domain,
                    duplicate=reply.duplicate,
                    batch_id=reply.batch,
                    batch_size=reply.count,
                )
            )
