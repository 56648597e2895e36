"""Provisioning against a real nats-server: idempotent, and loud about conflicting configuration.

These tests connect without the ``nc`` fixture, which would provision before the test could
prepare a conflicting stream or consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from events.errors import ConfigurationError
from events.subjects import DLQ_STREAM, EVENTS_STREAM, INTAKE_STREAM
from infra.bus.connection import connect
from infra.bus.outputs import OUTPUTS_BUCKET
from infra.bus.streams import ConsumerSpec, consumer_config, provision, stream_configs
from infra.settings import KiB, MiB, Settings

ONE_FILTER = ConsumerSpec(
    EVENTS_STREAM, "one-filter", ("agora.events.*.task_scheduled",), "provisioning test"
)
TWO_FILTERS = ConsumerSpec(
    EVENTS_STREAM,
    "two-filters",
    ("agora.events.*.task_completed", "agora.events.*.task_failed"),
    "provisioning test",
)


@pytest.fixture
async def bare_nc(settings: Settings) -> AsyncIterator[NatsClient]:
    client = await connect(settings, "agora-provision-test")
    yield client
    await client.close()


def events_stream(settings: Settings) -> StreamConfig:
    return next(c for c in stream_configs(settings) if c.name == EVENTS_STREAM)


# The streams, and the one behind the outputs bucket.
ALL_STREAMS = sorted([DLQ_STREAM, EVENTS_STREAM, INTAKE_STREAM, f"OBJ_{OUTPUTS_BUCKET}"])


async def stream_names(js: JetStreamContext) -> list[str]:
    return sorted(info.config.name or "" for info in await js.streams_info())


async def test_provisioning_twice_changes_nothing(bare_nc: NatsClient, settings: Settings) -> None:
    js = bare_nc.jetstream()
    consumers = [(ONE_FILTER, 32), (TWO_FILTERS, 32)]
    await provision(js, settings, consumers)
    stream_before = await js.stream_info(EVENTS_STREAM)
    consumer_before = await js.consumer_info(EVENTS_STREAM, TWO_FILTERS.durable)

    await provision(js, settings, consumers)

    assert await stream_names(js) == ALL_STREAMS
    stream_after = await js.stream_info(EVENTS_STREAM)
    assert stream_after.created == stream_before.created
    assert stream_after.config == stream_before.config
    consumer_after = await js.consumer_info(EVENTS_STREAM, TWO_FILTERS.durable)
    assert consumer_after.created == consumer_before.created
    assert sorted(consumer_after.config.filter_subjects or []) == list(TWO_FILTERS.filter_subjects)
    assert len(await js.consumers_info(EVENTS_STREAM)) == 2


async def test_replicas_provisioning_at_the_same_time_all_succeed(
    bare_nc: NatsClient, settings: Settings
) -> None:
    js = bare_nc.jetstream()
    await asyncio.gather(*(provision(js, settings, [(ONE_FILTER, 32)]) for _ in range(4)))

    assert await stream_names(js) == ALL_STREAMS
    assert [c.name for c in await js.consumers_info(EVENTS_STREAM)] == [ONE_FILTER.durable]


async def test_a_stream_with_another_duplicate_window_is_refused_and_left_alone(
    bare_nc: NatsClient, settings: Settings
) -> None:
    js = bare_nc.jetstream()
    await js.add_stream(replace(events_stream(settings), duplicate_window=60.0))

    with pytest.raises(ConfigurationError) as refused:
        await provision(js, settings)

    message = str(refused.value)
    assert "stream AGORA_EVENTS: duplicate_window is 60.0, agora needs 120.0" in message
    assert "max_msg_size" not in message  # only real differences are named
    assert (await js.stream_info(EVENTS_STREAM)).config.duplicate_window == 60.0


async def test_a_stream_with_another_max_msg_size_is_refused(
    bare_nc: NatsClient, settings: Settings
) -> None:
    js = bare_nc.jetstream()
    await js.add_stream(replace(events_stream(settings), max_msg_size=512 * KiB))

    with pytest.raises(ConfigurationError, match="max_msg_size") as refused:
        await provision(js, settings)

    assert f"max_msg_size is {512 * KiB}, agora needs {MiB}" in str(refused.value)


async def test_every_difference_is_named_in_one_error(
    bare_nc: NatsClient, settings: Settings
) -> None:
    js = bare_nc.jetstream()
    await js.add_stream(
        replace(events_stream(settings), duplicate_window=30.0, max_msg_size=256 * KiB)
    )

    with pytest.raises(ConfigurationError) as refused:
        await provision(js, settings)

    message = str(refused.value)
    assert "duplicate_window is 30.0, agora needs 120.0" in message
    assert f"max_msg_size is {256 * KiB}, agora needs {MiB}" in message


async def test_a_consumer_with_other_filters_follows_the_service_keeping_its_position(
    bare_nc: NatsClient, settings: Settings
) -> None:
    js = bare_nc.jetstream()
    await provision(js, settings)
    fewer = replace(TWO_FILTERS, filter_subjects=TWO_FILTERS.filter_subjects[:1])
    await js.add_consumer(EVENTS_STREAM, consumer_config(fewer, settings, 32))
    handled = await js.publish(fewer.filter_subjects[0].replace("*", "g-1"), b"old")
    consumer = await js.pull_subscribe_bind(fewer.durable, stream=EVENTS_STREAM)
    [message] = await consumer.fetch(1, timeout=5)
    await message.ack_sync()

    await provision(js, settings, [(TWO_FILTERS, 32)])  # a new version's inputs

    info = await js.consumer_info(EVENTS_STREAM, TWO_FILTERS.durable)
    assert sorted(info.config.filter_subjects or []) == sorted(TWO_FILTERS.filter_subjects)
    assert info.ack_floor.stream_seq == handled.seq  # what it handled stays handled
    assert info.num_pending == 0


async def test_an_intake_stream_from_before_schedules_is_updated_in_place(
    bare_nc: NatsClient, settings: Settings
) -> None:
    js = bare_nc.jetstream()
    intake = next(c for c in stream_configs(settings) if c.name == INTAKE_STREAM)
    assert intake.allow_msg_schedules
    await js.add_stream(replace(intake, allow_msg_schedules=None, allow_msg_ttl=None))
    await js.publish("agora.intake.goal", b'{"text": "from before"}')
    await provision(js, settings)
    info = await js.stream_info(INTAKE_STREAM)
    assert info.config.allow_msg_schedules
    assert info.config.allow_msg_ttl
    assert info.state.messages == 1  # what it held stays
