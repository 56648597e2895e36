"""A pinned consumer against a real nats-server: one replica at a time receives everything.

Two consume loops share a consumer with a ``pinned_client`` priority group. What each one
handled is recorded by its handler; who is pinned is read from the server (consumer info).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace

from nats.aio.client import Client as NatsClient
from nats.errors import ConnectionClosedError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from events.subjects import EVENTS_STREAM
from infra.bus.connection import connect
from infra.bus.consume import ConsumeLoop, Delivery
from infra.bus.pin import Pin
from infra.bus.streams import ConsumerSpec, provision
from infra.platform.topology import PINNED_GROUP
from infra.settings import Settings
from tests.integration.test_consume_loop import publish, running, settled
from tests.support import wait_until


async def pinned_consumer(js: JetStreamContext, settings: Settings, durable: str) -> ConsumerSpec:
    spec = ConsumerSpec(
        EVENTS_STREAM,
        durable,
        (f"agora.events.*.{durable}",),
        f"test {durable}",
        priority_group=PINNED_GROUP,
    )
    await provision(js, settings, [(spec, 64)])
    return spec


async def server_info(nc: NatsClient, spec: ConsumerSpec) -> dict[str, object]:
    reply = await nc.request(f"$JS.API.CONSUMER.INFO.{spec.stream}.{spec.durable}", b"")
    info: dict[str, object] = json.loads(reply.data)
    return info


async def pinned_id(nc: NatsClient, spec: ConsumerSpec) -> str:
    groups = (await server_info(nc, spec)).get("priority_groups") or []
    assert isinstance(groups, list)
    return str(next((g.get("pinned_client_id", "") for g in groups), ""))


class Replica:
    """A consume loop on its own connection, recording what its handler was given."""

    def __init__(self, nc: NatsClient, spec: ConsumerSpec, settings: Settings) -> None:
        self.nc = nc
        self.handled: list[int] = []
        self.pin = Pin(nc, spec.stream, spec.durable, PINNED_GROUP)

        async def handle(delivery: Delivery) -> None:
            self.handled.append(delivery.stream_seq)

        self.loop = ConsumeLoop(
            nc=nc,
            spec=spec,
            handler=handle,
            pin=self.pin,
            pinned_timeout_s=settings.pinned_timeout_s,
        )


@contextlib.asynccontextmanager
async def two_replicas(
    settings: Settings, spec: ConsumerSpec
) -> AsyncIterator[tuple[Replica, Replica]]:
    first = Replica(await connect(settings, "replica-1"), spec, settings)
    second = Replica(await connect(settings, "replica-2"), spec, settings)
    try:
        yield first, second
    finally:
        await first.nc.close()
        await second.nc.close()


async def test_one_replica_receives_every_message_and_a_standby_takes_over_when_it_goes_silent(
    settings: Settings, nc: NatsClient
) -> None:
    settings = replace(settings, pinned_timeout_s=1.0)
    js = nc.jetstream()
    spec = await pinned_consumer(js, settings, "pinned")
    async with two_replicas(settings, spec) as (first, second):
        await _silent_active_replica_taken_over(nc, js, spec, first, second)


async def _silent_active_replica_taken_over(
    nc: NatsClient, js: JetStreamContext, spec: ConsumerSpec, first: Replica, second: Replica
) -> None:
    stop = asyncio.Event()
    runs = {r: asyncio.ensure_future(r.loop.run(stop)) for r in (first, second)}
    try:
        before = [await publish(js, spec, "g-1", f"m{n}".encode()) for n in range(20)]
        await wait_until(lambda: settled(js, spec), timeout_s=10, what="the first batch")
        active, standby = (first, second) if first.handled else (second, first)
        assert sorted(active.handled) == before
        assert standby.handled == []
        assert active.pin.held
        assert not standby.pin.held
        assert await pinned_id(nc, spec) == active.pin.id

        # The active replica goes silent (a crash): the server unpins it after the priority
        # timeout, and the standby's next request is pinned.
        await active.nc.close()
        with contextlib.suppress(ConnectionClosedError):
            await runs[active]
        after = [await publish(js, spec, "g-2", f"m{n}".encode()) for n in range(20)]
        await wait_until(lambda: settled(js, spec), timeout_s=10, what="the standby's turn")
        assert sorted(standby.handled) == after
        assert standby.pin.held
        assert await pinned_id(nc, spec) == standby.pin.id
    finally:
        stop.set()
        await asyncio.wait(runs.values(), timeout=10)


async def test_a_stopping_replica_hands_its_pin_on_at_once(
    settings: Settings, nc: NatsClient
) -> None:
    # A priority timeout far beyond the test's deadlines: only the hand-over can explain it.
    settings = replace(settings, pinned_timeout_s=60.0)
    js = nc.jetstream()
    spec = await pinned_consumer(js, settings, "handover")
    async with (
        two_replicas(settings, spec) as (first, second),
        running(first.loop) as first_run,
        running(second.loop) as second_run,
    ):
        await publish(js, spec, "g-1", b"first")
        await wait_until(lambda: settled(js, spec), timeout_s=10, what="the first message")
        active_run, standby = (first_run, second) if first.handled else (second_run, first)
        await active_run.stop_and_wait()
        seq = await publish(js, spec, "g-1", b"second")
        await wait_until(lambda: settled(js, spec), timeout_s=10, what="the standby pinned")
        assert standby.handled == [seq]
        assert await pinned_id(nc, spec) == standby.pin.id


async def test_a_lapsed_pin_is_refused_and_the_replica_is_pinned_afresh(
    settings: Settings, nc: NatsClient
) -> None:
    settings = replace(settings, pinned_timeout_s=1.0)
    js = nc.jetstream()
    spec = await pinned_consumer(js, settings, "lapsed")
    replica = Replica(nc, spec, settings)
    lost: list[str] = []
    replica.pin.on_lost(lambda: lost.append("lost"))
    async with running(replica.loop):
        await publish(js, spec, "g-1", b"before")
        await wait_until(lambda: settled(js, spec), timeout_s=10, what="the first message")
        old = replica.pin.id
        # Unpinned under it: the requests it has waiting name a pin the server no longer has,
        # so the next message is not theirs (423); the replica asks again and is pinned anew.
        await nc.request(
            f"$JS.API.CONSUMER.UNPIN.{spec.stream}.{spec.durable}",
            json.dumps({"group": PINNED_GROUP}).encode(),
        )
        seq = await publish(js, spec, "g-1", b"after")

        async def told() -> bool:
            return bool(lost)

        await wait_until(told, timeout_s=5, what="the replica to learn its pin lapsed")
        await wait_until(lambda: settled(js, spec), timeout_s=10, what="the replica pinned anew")
        assert replica.pin.id not in ("", old)
        assert await pinned_id(nc, spec) == replica.pin.id
    assert replica.handled[-1] == seq


async def test_an_existing_unpinned_consumer_is_given_its_priority_group_in_place(
    settings: Settings, nc: NatsClient
) -> None:
    js = nc.jetstream()
    spec = ConsumerSpec(
        EVENTS_STREAM, "upgraded", ("agora.events.*.upgraded",), "test", PINNED_GROUP
    )
    # As an agora before pinning provisioned it.
    await js.add_consumer(
        EVENTS_STREAM,
        ConsumerConfig(
            durable_name="upgraded",
            filter_subject="agora.events.*.upgraded",
            ack_wait=settings.ack_wait_s,
            max_deliver=-1,
        ),
    )
    seq = await publish(js, spec, "g-1", b"kept")
    await provision(js, replace(settings, pinned_timeout_s=7.0), [(spec, 64)])
    config = (await server_info(nc, spec))["config"]
    assert isinstance(config, dict)
    assert config["priority_groups"] == [PINNED_GROUP]
    assert config["priority_policy"] == "pinned_client"
    assert config["priority_timeout"] == 7_000_000_000
    replica = Replica(nc, spec, settings)
    async with running(replica.loop):
        await wait_until(lambda: settled(js, spec), timeout_s=10, what="the kept message")
    assert replica.handled == [seq]
