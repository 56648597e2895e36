"""The shared consume loop against a real nats-server: ack, retry, DLQ, order, bounds, drain.

Each test provisions its own durable consumer on AGORA_EVENTS, filtered to a subject token of its
own (``agora.events.<goal>.<durable>``), publishes raw bytes and runs ``ConsumeLoop.run`` with a
handler that records what it saw. Outcomes are read back from the server (consumer info, the DLQ
stream), never from the loop's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from events.errors import DecodeError
from events.subjects import DLQ_STREAM, EVENTS_STREAM, dlq_subject, goal_id_from_subject
from infra.bus.consume import ConsumeLoop, Delivery, Handler
from infra.bus.dlq import DeadLetter, decode_dead_letter
from infra.bus.streams import ConsumerSpec, provision
from infra.settings import Settings
from tests.support import wait_until


async def consumer_under_test(
    js: JetStreamContext, settings: Settings, durable: str, max_ack_pending: int = 256
) -> ConsumerSpec:
    """A durable consumer of its own on AGORA_EVENTS, as a service would provision it."""
    spec = ConsumerSpec(EVENTS_STREAM, durable, (f"agora.events.*.{durable}",), f"test {durable}")
    await provision(js, settings, [(spec, max_ack_pending)])
    return spec


async def publish(
    js: JetStreamContext,
    spec: ConsumerSpec,
    goal: str,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> int:
    """Publish one message the consumer will see; returns its stream sequence."""
    ack = await js.publish(
        f"agora.events.{goal}.{spec.durable}", body, stream=EVENTS_STREAM, headers=headers
    )
    return int(ack.seq)


async def settled(js: JetStreamContext, spec: ConsumerSpec) -> bool:
    """Nothing left to deliver and nothing delivered-but-unacknowledged."""
    info: ConsumerInfo = await js.consumer_info(spec.stream, spec.durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def dead_letters(js: JetStreamContext, durable: str) -> list[DeadLetter]:
    """Every dead letter recorded for ``durable`` (each test has a server of its own)."""
    state = (await js.stream_info(DLQ_STREAM)).state
    letters = []
    for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
        raw = await js.get_msg(DLQ_STREAM, seq)
        if raw.subject == dlq_subject(durable) and raw.data is not None:
            letters.append(decode_dead_letter(raw.data))
    return letters


@dataclass
class Recorder:
    """What a handler saw: every entry, every success, and how many ran at once."""

    entered: list[tuple[int, int]] = field(default_factory=list)  # (stream_seq, num_delivered)
    handled: list[int] = field(default_factory=list)  # stream_seq of successful runs
    active: int = 0
    max_active: int = 0

    def enter(self, delivery: Delivery) -> None:
        self.entered.append((delivery.stream_seq, delivery.num_delivered))
        self.active += 1
        self.max_active = max(self.max_active, self.active)

    def leave(self, delivery: Delivery, *, ok: bool) -> None:
        self.active -= 1
        if ok:
            self.handled.append(delivery.stream_seq)

    def deliveries_of(self, seq: int) -> list[int]:
        return [n for s, n in self.entered if s == seq]


@dataclass
class Running:
    loop: ConsumeLoop
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def stop_and_wait(self) -> float:
        """Ask the loop to stop; seconds until run() returned."""
        started = time.monotonic()
        self.stop.set()
        await asyncio.wait_for(self.task, 30)
        return time.monotonic() - started


@contextlib.asynccontextmanager
async def running(loop: ConsumeLoop) -> AsyncIterator[Running]:
    stop = asyncio.Event()
    run = Running(loop, stop, asyncio.ensure_future(loop.run(stop)))
    try:
        yield run
    finally:
        if not run.task.done():
            await run.stop_and_wait()


def loop_for(nc: NatsClient, spec: ConsumerSpec, handler: Handler, **options: Any) -> ConsumeLoop:
    # Short-lived pull requests only make stop() quicker; they change no semantics.
    return ConsumeLoop(nc=nc, spec=spec, handler=handler, pull_expires_s=0.5, **options)


def holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A plain predicate on what handlers recorded, as a condition for wait_until."""

    async def condition() -> bool:
        return check()

    return condition


async def test_a_handled_message_is_acked(nc: NatsClient, settings: Settings) -> None:
    js = nc.jetstream()
    spec = await consumer_under_test(js, settings, "acks")
    seqs = [await publish(js, spec, "g-1", f"m{n}".encode()) for n in range(5)]
    seen = Recorder()

    async def handle(delivery: Delivery) -> None:
        seen.enter(delivery)
        seen.leave(delivery, ok=True)

    async with running(loop_for(nc, spec, handle)):
        await wait_until(lambda: settled(js, spec), timeout_s=5, what="every message acked")

    assert sorted(seen.handled) == seqs
    info = await js.consumer_info(spec.stream, spec.durable)
    assert info.ack_floor.stream_seq == seqs[-1]
    assert info.num_redelivered == 0


async def test_a_transient_failure_is_retried_until_it_succeeds_once(
    nc: NatsClient, settings: Settings
) -> None:
    js = nc.jetstream()
    spec = await consumer_under_test(js, settings, "transient")
    seq = await publish(js, spec, "g-1", b"flaky")
    seen = Recorder()

    async def fail_twice(delivery: Delivery) -> None:
        seen.enter(delivery)
        if delivery.num_delivered < 3:
            seen.leave(delivery, ok=False)
            raise RuntimeError(f"transient failure on delivery {delivery.num_delivered}")
        seen.leave(delivery, ok=True)

    async with running(loop_for(nc, spec, fail_twice, max_deliver=5)):
        await wait_until(lambda: settled(js, spec), timeout_s=5, what="the retried message acked")

    assert seen.deliveries_of(seq) == [1, 2, 3]
    assert seen.handled == [seq]
    assert await dead_letters(js, spec.durable) == []


async def test_a_poison_message_is_dead_lettered_after_max_deliver_and_others_go_on(
    nc: NatsClient, settings: Settings
) -> None:
    js = nc.jetstream()
    spec = await consumer_under_test(js, settings, "poison")
    before = [await publish(js, spec, "g-1", f"good {n}".encode()) for n in range(3)]
    headers = {"Nats-Msg-Id": "poison-1", "X-Trace": "trace-42"}
    poison = await publish(js, spec, "g-1", b"poison", headers)
    after = [await publish(js, spec, "g-1", f"good {n}".encode()) for n in range(3, 6)]
    seen = Recorder()

    async def reject_poison(delivery: Delivery) -> None:
        seen.enter(delivery)
        ok = delivery.data != b"poison"
        seen.leave(delivery, ok=ok)
        if not ok:
            raise RuntimeError("cannot digest this poison")

    async def dead_lettered_and_settled() -> bool:
        return len(await dead_letters(js, spec.durable)) == 1 and await settled(js, spec)

    async with running(loop_for(nc, spec, reject_poison, max_deliver=3)) as run:
        await wait_until(dead_lettered_and_settled, timeout_s=8, what="the poison dead-lettered")
        # Termed, not nak'd: a nak'd message would still count as pending acknowledgement.
        assert (await js.consumer_info(spec.stream, spec.durable)).num_ack_pending == 0
        late = await publish(js, spec, "g-1", b"good late")
        await wait_until(holds(lambda: late in seen.handled), timeout_s=5, what="a later message")
        await run.stop_and_wait()

    assert seen.deliveries_of(poison) == [1, 2, 3]
    assert sorted(seen.handled) == [*before, *after, late]
    [letter] = await dead_letters(js, spec.durable)
    assert letter.reason == "max_deliveries"
    assert "cannot digest this poison" in letter.error
    assert "RuntimeError" in letter.error
    assert letter.deliveries == 3
    assert letter.data == b"poison"
    assert letter.headers["X-Trace"] == "trace-42"
    assert letter.headers["Nats-Msg-Id"] == "poison-1"
    assert (letter.stream, letter.stream_seq, letter.consumer) == (EVENTS_STREAM, poison, "poison")
    assert letter.subject == "agora.events.g-1.poison"


async def test_undecodable_input_is_dead_lettered_on_first_delivery(
    nc: NatsClient, settings: Settings
) -> None:
    js = nc.jetstream()
    spec = await consumer_under_test(js, settings, "undecodable")
    seq = await publish(js, spec, "g-1", b"\xff\xfe not an event")
    seen = Recorder()

    async def refuse(delivery: Delivery) -> None:
        seen.enter(delivery)
        seen.leave(delivery, ok=False)
        raise DecodeError("not a valid event: invalid utf-8")

    async def dead_lettered_and_settled() -> bool:
        return len(await dead_letters(js, spec.durable)) == 1 and await settled(js, spec)

    async with running(loop_for(nc, spec, refuse, max_deliver=5)):
        await wait_until(dead_lettered_and_settled, timeout_s=5, what="a dead letter")

    assert seen.entered == [(seq, 1)]
    [letter] = await dead_letters(js, spec.durable)
    assert letter.reason == "undecodable"
    assert letter.deliveries == 1
    assert letter.error == "DecodeError: not a valid event: invalid utf-8"
    assert letter.data == b"\xff\xfe not an event"


async def test_each_goal_is_handled_in_stream_order_while_goals_overlap(
    nc: NatsClient, settings: Settings
) -> None:
    js = nc.jetstream()
    spec = await consumer_under_test(js, settings, "ordering")
    goals = ("g-a", "g-b", "g-c")
    published: dict[str, list[int]] = defaultdict(list)
    for n in range(20):
        for goal in goals:
            published[goal].append(await publish(js, spec, goal, f"{goal} {n}".encode()))
    seen = Recorder()
    order: dict[Hashable, list[int]] = defaultdict(list)
    active_per_goal: dict[Hashable, int] = defaultdict(int)
    max_per_goal = 0

    def goal_of(delivery: Delivery) -> Hashable | None:
        return goal_id_from_subject(delivery.subject)

    async def record_slowly(delivery: Delivery) -> None:
        nonlocal max_per_goal
        goal = goal_of(delivery)
        seen.enter(delivery)
        active_per_goal[goal] += 1
        max_per_goal = max(max_per_goal, active_per_goal[goal])
        order[goal].append(delivery.stream_seq)
        # 0-5 ms, deterministic but uneven: without lanes later messages would overtake.
        await asyncio.sleep((delivery.stream_seq * 7 % 6) / 1000)
        active_per_goal[goal] -= 1
        seen.leave(delivery, ok=True)

    loop = loop_for(nc, spec, record_slowly, concurrency=16, ordering_key=goal_of)
    async with running(loop):
        await wait_until(lambda: settled(js, spec), timeout_s=8, what="all 60 messages acked")

    for goal in goals:
        assert order[goal] == published[goal], f"{goal} out of order"
    assert max_per_goal == 1, "two messages of one goal were handled at once"
    assert seen.max_active > 1, "different goals never overlapped"


async def test_no_more_handlers_run_at_once_than_the_concurrency(
    nc: NatsClient, settings: Settings
) -> None:
    js = nc.jetstream()
    # The server would allow far more in flight: the bound under test is the loop's own.
    spec = await consumer_under_test(js, settings, "bounded", max_ack_pending=1000)
    seqs = [await publish(js, spec, f"g-{n}", b"slow") for n in range(40)]
    seen = Recorder()

    async def slow(delivery: Delivery) -> None:
        seen.enter(delivery)
        await asyncio.sleep(0.02)
        seen.leave(delivery, ok=True)

    async with running(loop_for(nc, spec, slow, concurrency=4)):
        await wait_until(lambda: settled(js, spec), timeout_s=8, what="all 40 messages acked")

    assert sorted(seen.handled) == seqs
    assert seen.max_active == 4


async def test_a_long_handler_keeps_its_message_with_heartbeats(
    nc: NatsClient, settings: Settings
) -> None:
    js = nc.jetstream()
    short_ack_wait = replace(settings, ack_wait_s=1.0)
    spec = await consumer_under_test(js, short_ack_wait, "heartbeat")
    seq = await publish(js, spec, "g-1", b"long job")
    seen = Recorder()

    async def take_long(delivery: Delivery) -> None:
        seen.enter(delivery)
        await asyncio.sleep(2.5)  # the slow work itself, 2.5 x the server's ack wait
        seen.leave(delivery, ok=True)

    async with running(loop_for(nc, spec, take_long, ack_wait_s=1.0)):
        await wait_until(lambda: settled(js, spec), timeout_s=6, what="the long job acked")

    # A redelivery would have entered the handler again while the first run was still going.
    assert seen.entered == [(seq, 1)]
    assert seen.handled == [seq]
    assert (await js.consumer_info(spec.stream, spec.durable)).num_redelivered == 0


async def test_stop_lets_in_flight_handlers_finish_and_a_restart_handles_the_rest(
    nc: NatsClient, settings: Settings
) -> None:
    js = nc.jetstream()
    # A 30 s ack wait: no redelivery can blur what the first loop acked or left behind.
    spec = await consumer_under_test(js, replace(settings, ack_wait_s=30.0), "drain")
    seqs = [await publish(js, spec, f"g-{n}", f"m{n}".encode()) for n in range(12)]
    first = Recorder()

    async def slow(delivery: Delivery) -> None:
        first.enter(delivery)
        await asyncio.sleep(0.3)
        first.leave(delivery, ok=True)

    loop = loop_for(nc, spec, slow, concurrency=4, drain_timeout_s=2.0)
    async with running(loop) as run:
        await wait_until(holds(lambda: first.active == 4), timeout_s=5, what="4 handlers in flight")
        took_s = await run.stop_and_wait()

    assert took_s < 2.0
    assert len(first.handled) == 4
    assert sorted(first.handled) == sorted(seq for seq, _ in first.entered)

    async def in_flight_acked() -> bool:
        # Acks are published without a reply: give the server a moment to apply them.
        info: ConsumerInfo = await js.consumer_info(spec.stream, spec.durable)
        return info.num_ack_pending == 0

    await wait_until(in_flight_acked, timeout_s=2, what="the in-flight messages acked")
    assert (await js.consumer_info(spec.stream, spec.durable)).num_pending == 8

    second = Recorder()

    async def quick(delivery: Delivery) -> None:
        second.enter(delivery)
        second.leave(delivery, ok=True)

    async with running(loop_for(nc, spec, quick, concurrency=4)):
        await wait_until(lambda: settled(js, spec), timeout_s=5, what="the rest handled")

    assert sorted(first.handled + second.handled) == seqs
    assert all(n == 1 for _, n in second.entered), "a message was delivered twice"


async def test_work_that_outlives_the_drain_is_handed_back_in_order(
    nc: NatsClient, settings: Settings
) -> None:
    js = nc.jetstream()
    # With a 30 s ack wait only an explicit nak brings the unfinished messages back quickly.
    spec = await consumer_under_test(js, replace(settings, ack_wait_s=30.0), "handback")
    stuck_goal = [await publish(js, spec, "g-stuck", b"stuck")]
    stuck_goal += [await publish(js, spec, "g-stuck", f"queued {n}".encode()) for n in range(3)]
    free_goal = [await publish(js, spec, "g-free", f"free {n}".encode()) for n in range(2)]
    first = Recorder()
    never = asyncio.Event()

    def goal_of(delivery: Delivery) -> Hashable | None:
        return goal_id_from_subject(delivery.subject)

    async def hang_on_stuck(delivery: Delivery) -> None:
        first.enter(delivery)
        if delivery.data == b"stuck":
            await never.wait()
        first.leave(delivery, ok=True)

    loop = loop_for(
        nc, spec, hang_on_stuck, ordering_key=goal_of, drain_timeout_s=0.5, ack_wait_s=30.0
    )
    async with running(loop) as run:
        await wait_until(
            holds(lambda: sorted(first.handled) == free_goal and first.active == 1),
            timeout_s=5,
            what="the free goal done while the stuck one hangs",
        )
        took_s = await run.stop_and_wait()

    assert took_s < 0.5 + 1.5
    assert first.deliveries_of(stuck_goal[0]) == [1]

    second = Recorder()
    order: list[int] = []

    async def quick(delivery: Delivery) -> None:
        second.enter(delivery)
        order.append(delivery.stream_seq)
        second.leave(delivery, ok=True)

    async with running(loop_for(nc, spec, quick, ordering_key=goal_of, ack_wait_s=30.0)):
        await wait_until(lambda: settled(js, spec), timeout_s=5, what="the handed-back work")

    assert order == stuck_goal
    assert sorted(second.entered) == [(seq, 2) for seq in stuck_goal]
