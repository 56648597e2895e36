"""The one consume loop every service runs.

Durable pull consumer (pull requests kept outstanding, each message handled as it arrives),
bounded concurrency, per-key ordering (a goal's events are handled one at a
time, in stream order, while different goals run in parallel), ack only after the handler returned
(which means every output was durably published), nak with backoff on failure, DLQ + term for
undecodable input or too many deliveries, in-progress heartbeats for long handlers, and a graceful
drain on shutdown.

The loop speaks to NATS through a :class:`~infra.bus.core.CoreBus`: the lean wire client in
production (infra/bus/wire.py), nats-py where that cannot connect. Acknowledgements are the
plain messages JetStream defines (``+ACK``, ``-NAK`` with a delay, ``+TERM``, ``+WPI``) on a
delivery's reply subject.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Mapping
from dataclasses import dataclass, field
from functools import partial

from nats.aio.client import Client as NatsClient

from events.errors import DecodeError
from events.subjects import goal_id_from_subject
from infra.bus.core import CoreBus, Inbound, NatsPyCore
from infra.bus.dlq import DeadLetterQueue
from infra.bus.frames import ProtocolError, delivery_position
from infra.bus.pin import Pin
from infra.bus.pull import PullRequests
from infra.bus.streams import ConsumerSpec
from infra.logging import bind_lazy_fields, get_logger, unbind_lazy_fields

__all__ = ["ConsumeLoop", "Delivery", "Handler", "retry_delay_s"]

log = get_logger("agora.consume")


ACK = b"+ACK"
TERM = b"+TERM"
IN_PROGRESS = b"+WPI"


def nak(delay_s: float | None = None) -> bytes:
    """``-NAK``: redeliver, after ``delay_s`` if given."""
    return b'-NAK {"delay":%d}' % int(delay_s * 1e9) if delay_s else b"-NAK"


@dataclass(frozen=True, slots=True)
class Delivery:
    reply: str  # the ack subject, which also carries sequence and delivery count
    subject: str
    data: bytes
    headers: Mapping[str, str]
    stream_seq: int
    num_delivered: int

    @classmethod
    def of(cls, msg: Inbound) -> Delivery:
        """Raises ProtocolError when ``msg`` is no JetStream delivery."""
        num_delivered, stream_seq = delivery_position(msg.reply)
        return cls(
            reply=msg.reply,
            subject=msg.subject,
            data=msg.data,
            headers=msg.headers,
            stream_seq=stream_seq,
            num_delivered=num_delivered,
        )

    @property
    def redelivered(self) -> bool:
        return self.num_delivered > 1


Handler = Callable[[Delivery], Awaitable[None]]
OrderingKey = Callable[[Delivery], Hashable | None]


def retry_delay_s(num_delivered: int, base_s: float = 0.25, cap_s: float = 15.0) -> float:
    """Backoff before the next delivery of a message whose handling failed."""
    # Bounded exponent: a message whose dead letter cannot be written is nak'd without end, and
    # 2**1024 no longer converts to a float.
    doublings = min(max(0, num_delivered - 1), 64)
    return float(min(cap_s, base_s * 2**doublings))


def no_ordering(_: Delivery) -> Hashable | None:
    return None


@dataclass
class ConsumeLoop:
    nc: NatsClient  # the control plane: dead letters, the pin's requests
    spec: ConsumerSpec
    handler: Handler
    # The hot path: pull requests, deliveries, acks (None: over ``nc``).
    core: CoreBus | None = None
    concurrency: int = 64
    max_deliver: int = 8
    ack_wait_s: float = 30.0
    drain_timeout_s: float = 10.0
    ordering_key: OrderingKey = no_ordering
    # How long each pull request stays open at the server; also bounds shutdown's wait.
    pull_expires_s: float = 2.0
    # A pinned consumer (spec.priority_group): this replica's pin, and the consumer's priority
    # timeout, within which a pinned replica must send a request or lose the pin.
    pin: Pin | None = None
    pinned_timeout_s: float = 5.0
    _in_flight: int = 0
    _room: asyncio.Event = field(default_factory=asyncio.Event)
    _lanes: dict[Hashable, deque[Delivery]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _dlq: DeadLetterQueue | None = None
    _pulls: PullRequests | None = None
    _stopping: bool = False
    # Handlings under way, each with when the server last heard it is alive (its start, or
    # its last in-progress): one sweep beats the old ones, not a timer per message.
    _alive: dict[str, float] = field(default_factory=dict)
    _sweep: asyncio.TimerHandle | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self._dlq = DeadLetterQueue(self.nc.jetstream(), self.spec.durable)
        self._stopping = False
        # Looked up once: each asyncio.get_running_loop() (ensure_future's too) is a getpid
        # system call on Python 3.11.
        self._loop = asyncio.get_running_loop()
        pin = self.pin
        if pin is None and self.spec.priority_group is not None:
            pin = self.pin = Pin(
                self.nc, self.spec.stream, self.spec.durable, self.spec.priority_group
            )
        if pin is not None:
            # Requests end, and the loop wakes, often enough to renew the pin in time.
            self.pull_expires_s = min(self.pull_expires_s, self.pinned_timeout_s / 2)
        core = self.core = self.core or NatsPyCore(self.nc)
        pulls = self._pulls = PullRequests(
            core,
            self.spec.stream,
            self.spec.durable,
            self._arrived,
            expires_s=self.pull_expires_s,
            ended=self._room.set,
            pin=pin,
            keepalive_s=self.pinned_timeout_s / 3 if pin is not None else float("inf"),
        )
        await pulls.open()
        log.info("consuming", stream=self.spec.stream, consumer=self.spec.durable)
        # One waiter for the whole run, not three tasks per wake-up: the loop wakes when room
        # worth a pull request frees up, when told to stop, or to renew expired requests.
        stopped = asyncio.ensure_future(stop.wait())
        stopped.add_done_callback(lambda _: self._room.set())
        try:
            while not stop.is_set():
                await pulls.top_up(self.concurrency - self._in_flight)
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.pull_expires_s / 2):
                        await self._room.wait()
        finally:
            stopped.cancel()
            self._stopping = True
            await self._drain()
            if self._sweep is not None:
                self._sweep.cancel()
                self._sweep = None
            if pin is not None:
                await pin.hand_on()  # a standby is pinned at once, not after the timeout
            # Requests still open at the server may yet deliver: hand those back (nak) until
            # they have expired, so no message waits out an ack wait in a dead request.
            if pulls.outstanding:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pulls.settled.wait(), self.pull_expires_s + 0.5)
            await pulls.close()

    def _arrived(self, msg: Inbound) -> None:
        if self._stopping:
            self._spawn(self._reply(msg.reply, nak()))
            return
        try:
            delivery = Delivery.of(msg)
        except ProtocolError as exc:
            log.warning("not_a_delivery", subject=msg.subject, error=str(exc))
            return
        self._dispatch(delivery)

    async def _reply(self, reply: str, kind: bytes) -> None:
        """Ack, nak, term or in-progress. On a broken connection it is lost, which is safe:
        the server redelivers later."""
        assert self.core is not None
        try:
            await self.core.publish(reply, kind)
        except Exception as exc:
            log.warning("ack_failed", error=repr(exc))

    def _dispatch(self, delivery: Delivery) -> None:
        self._in_flight += 1
        key = self.ordering_key(delivery)
        if key is None:
            self._spawn(self._process(delivery))
        elif key in self._lanes:
            self._lanes[key].append(delivery)
        else:
            self._lanes[key] = deque()
            self._spawn(self._run_lane(key, delivery))

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_lane(self, key: Hashable, first: Delivery) -> None:
        lane = self._lanes[key]
        try:
            await self._process(first)
            while lane:
                await self._process(lane.popleft())
        finally:
            del self._lanes[key]

    async def _process(self, delivery: Delivery) -> None:
        fields = bind_lazy_fields(partial(_log_fields, delivery, self.spec.durable))
        try:
            await self._handle_with_heartbeat(delivery)
        except asyncio.CancelledError:
            await self._reply(delivery.reply, nak())
            raise
        except DecodeError as exc:
            await self._dead_letter(delivery, "undecodable", exc)
        except Exception as exc:
            if delivery.num_delivered >= self.max_deliver:
                await self._dead_letter(delivery, "max_deliveries", exc)
            else:
                delay = retry_delay_s(delivery.num_delivered)
                log.warning(
                    "handler_failed_will_retry",
                    error=repr(exc),
                    deliveries=delivery.num_delivered,
                    retry_in_s=delay,
                )
                await self._reply(delivery.reply, nak(delay))
        else:
            await self._reply(delivery.reply, ACK)
        finally:
            self._in_flight -= 1
            if self._worth_a_pull():
                self._room.set()
            unbind_lazy_fields(fields)

    def _worth_a_pull(self) -> bool:
        """Whether PullRequests.top_up would ask for more now (it waits for half the room)."""
        pulls = self._pulls
        if pulls is None or not pulls.outstanding:
            return True
        room = self.concurrency - self._in_flight
        return room - pulls.outstanding >= room // 2

    async def _handle_with_heartbeat(self, delivery: Delivery) -> None:
        # While the handler works, the server hears at least every third of the ack wait that
        # it is alive, so the message is not redelivered under us (_beat_old_handlings).
        assert self._loop is not None
        alive, reply = self._alive, delivery.reply
        alive[reply] = self._loop.time()
        if self._sweep is None:
            self._arm_sweep()
        try:
            await self.handler(delivery)
        finally:
            alive.pop(reply, None)

    def _arm_sweep(self) -> None:
        assert self._loop is not None
        self._sweep = self._loop.call_later(self.ack_wait_s / 6, self._beat_old_handlings)

    def _beat_old_handlings(self) -> None:
        """Every sixth of the ack wait: an in-progress for each handling the server has not
        heard of for a sixth of it or longer, so none goes a third of it unheard. Disarmed
        while nothing is handled."""
        assert self._loop is not None
        self._sweep = None
        if not self._alive:
            return
        now = self._loop.time()
        due = now - self.ack_wait_s / 6
        for reply, heard in self._alive.items():
            if heard <= due:
                self._alive[reply] = now
                self._spawn(self._reply(reply, IN_PROGRESS))
        self._arm_sweep()

    async def _dead_letter(self, delivery: Delivery, reason: str, exc: Exception) -> None:
        assert self._dlq is not None
        log.error("dead_lettered", reason=reason, error=str(exc), deliveries=delivery.num_delivered)
        try:
            await self._dlq.record(
                stream=self.spec.stream,
                stream_seq=delivery.stream_seq,
                subject=delivery.subject,
                data=delivery.data,
                headers=delivery.headers,
                reason=reason,
                error=f"{type(exc).__name__}: {exc}",
                deliveries=delivery.num_delivered,
            )
        except Exception as dlq_exc:
            # Not recorded, so not dropped either: it comes back after a backoff.
            log.exception("dead_letter_failed", error=repr(dlq_exc))
            await self._reply(delivery.reply, nak(retry_delay_s(delivery.num_delivered)))
            return
        await self._reply(delivery.reply, TERM)

    async def _drain(self) -> None:
        """Let in-flight work finish; whatever cannot finish in time is handed back (nak)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.drain_timeout_s)
        # The server redelivers in the order it gets naks, so each lane's unfinished head (nak'd
        # by _process when cancelled) must go back before what queued behind it. Taken out of
        # the lanes first: a cancelled lane task removes its lane as it ends.
        queued = [delivery for lane in self._lanes.values() for delivery in lane]
        for lane in self._lanes.values():
            lane.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        for delivery in queued:
            await self._reply(delivery.reply, nak())


def _log_fields(delivery: Delivery, consumer: str) -> dict[str, object]:
    return {
        "goal_id": goal_id_from_subject(delivery.subject),
        "event_id": delivery.headers.get("Nats-Msg-Id"),
        "stream_seq": delivery.stream_seq,
        "consumer": consumer,
    }
