"""The connection to NATS and the JetStream operations services need: publish, read history."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck
from nats.js.errors import NotFoundError

from events.codec import decode_event, encode
from events.errors import AgoraError, ConfigurationError
from events.model import Event, event_type
from events.subjects import EVENTS_STREAM, event_subject, goal_events_filter
from infra.embedded import running_server_url
from infra.logging import get_logger
from infra.settings import Settings

__all__ = ["EventPublisher", "StreamGoalLog", "connect", "read_events", "resolve_urls"]

MSG_ID = "Nats-Msg-Id"
log = get_logger("agora.bus")


def resolve_urls(settings: Settings) -> list[str]:
    if settings.nats_urls:
        return list(settings.nats_urls)
    url = running_server_url(settings.nats_dir)
    if url is None:
        raise ConfigurationError(
            f"no agora NATS server is running for {settings.data_dir}: start one with "
            "`agora up` (or `agora demo`), or set AGORA_NATS_URL"
        )
    return [url]


async def connect(settings: Settings, name: str) -> NatsClient:
    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", error=str(exc), client=name)

    async def on_disconnect() -> None:
        log.info("nats_disconnected", client=name)

    async def on_reconnect() -> None:
        log.warning("nats_reconnected", client=name)

    return await nats.connect(
        servers=resolve_urls(settings),
        name=name,
        max_reconnect_attempts=-1,  # a server restart is a pause, never the end of a service
        reconnect_time_wait=0.25,
        connect_timeout=5,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )


@dataclass
class EventPublisher:
    """Appends events to AGORA_EVENTS, in order, each with ``Nats-Msg-Id`` = its event id.

    All of one call's events are sent back to back and their acknowledgements awaited together:
    one round trip instead of one per event. Order is kept, because the stream stores a
    connection's messages in the order they were sent. The call returns only once every
    event is acknowledged, so the caller may then ack its input. A duplicate (the same id
    inside the window) is acknowledged as such and not stored.
    """

    js: JetStreamContext
    timeout_s: float = 10.0

    async def __call__(self, events: Sequence[Event]) -> list[PubAck]:
        if not events:
            return []
        pending = [
            await self.js.publish_async(
                event_subject(event.goal_id, event_type(event)),
                encode(event),
                stream=EVENTS_STREAM,
                headers={MSG_ID: event.event_id},
            )
            for event in events
        ]
        try:
            return list(await asyncio.wait_for(asyncio.gather(*pending), self.timeout_s))
        except TimeoutError:
            raise AgoraError(
                f"the event stream did not acknowledge {len(events)} event(s) "
                f"within {self.timeout_s}s"
            ) from None


async def read_events(
    js: JetStreamContext, filter_subject: str, *, batch: int = 512
) -> AsyncIterator[tuple[int, Event]]:
    """Every stored event matching ``filter_subject``, in stream order, with its sequence."""
    sub = await js.pull_subscribe(
        filter_subject,
        stream=EVENTS_STREAM,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            mem_storage=True,
            inactive_threshold=30.0,
        ),
    )
    info = await sub.consumer_info()
    pending = info.num_pending or 0
    try:
        while pending > 0:
            for msg in await sub.fetch(batch=min(pending, batch), timeout=10):
                pending = msg.metadata.num_pending or 0
                yield msg.metadata.sequence.stream, decode_event(msg.data)
    finally:
        await sub.unsubscribe()
        with contextlib.suppress(NotFoundError, nats.errors.Error):
            await js.delete_consumer(EVENTS_STREAM, info.name)


@dataclass
class StreamGoalLog:
    """A goal's recorded history, read from the event stream."""

    js: JetStreamContext

    async def load(self, goal_id: str) -> list[Event]:
        return [event async for _, event in read_events(self.js, goal_events_filter(goal_id))]

    async def has_events(self, subject: str) -> bool:
        """Whether any event was stored on this exact subject (one direct get)."""
        try:
            await self.js.get_last_msg(EVENTS_STREAM, subject, direct=True)
        except NotFoundError:
            return False
        return True
