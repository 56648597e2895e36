"""Runs one service: connect, provision, start its consume loops, drain on stop.

Each service's composition root (``services/<name>/main.py``) exposes ``build(ctx)`` returning
the subscriptions it consumes and optional start/stop hooks; everything else is shared here.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from infra.bus import EventPublisher, StreamGoalLog, connect
from infra.consume import ConsumeLoop, Handler, OrderingKey, no_ordering
from infra.logging import get_logger
from infra.settings import Settings
from infra.streams import ConsumerSpec, consumers_for, provision

__all__ = [
    "SERVICES",
    "ServiceContext",
    "ServiceParts",
    "Subscription",
    "producer_name",
    "run_service",
    "utc_now",
]

VERSION = "0.1.0"
SERVICES = ("planner", "executor", "memory", "evaluator")
log = get_logger("agora.runner")


def utc_now() -> datetime:
    return datetime.now(UTC)


def producer_name(service: str) -> str:
    return f"{service}@{VERSION}"


@dataclass(frozen=True, slots=True)
class Subscription:
    spec: ConsumerSpec
    handler: Handler
    concurrency: int
    ordering_key: OrderingKey = no_ordering


@dataclass
class ServiceParts:
    subscriptions: list[Subscription]
    on_start: Callable[[], Awaitable[None]] | None = None
    on_stop: Callable[[], Awaitable[None]] | None = None


@dataclass
class ServiceContext:
    """What a composition root may wire into its service: adapters, never raw globals."""

    name: str
    settings: Settings
    nc: NatsClient
    js: JetStreamContext
    publish: EventPublisher
    goal_log: StreamGoalLog
    producer: str
    now: Callable[[], datetime] = field(default=utc_now)

    def spec(self, stream: str) -> ConsumerSpec:
        return next(s for s in consumers_for(self.name) if s.stream == stream)


def _builder(name: str) -> Callable[[ServiceContext], ServiceParts]:
    consumers_for(name)  # fails with the list of known services
    module = importlib.import_module(f"services.{name}.main")
    build: Callable[[ServiceContext], ServiceParts] = module.build
    return build


async def run_service(
    name: str,
    settings: Settings,
    stop: asyncio.Event,
    *,
    publisher: Callable[[JetStreamContext], EventPublisher] = EventPublisher,
) -> None:
    """Run ``name`` until ``stop`` is set. ``publisher`` is the adapter outputs go through."""
    build = _builder(name)
    nc = await connect(settings, name=f"agora-{name}")
    js = nc.jetstream()
    ctx = ServiceContext(
        name=name,
        settings=settings,
        nc=nc,
        js=js,
        publish=publisher(js),
        goal_log=StreamGoalLog(js),
        producer=producer_name(name),
    )
    try:
        parts = build(ctx)
        await provision(js, settings, [(s.spec, 2 * s.concurrency) for s in parts.subscriptions])
        if parts.on_start:
            await parts.on_start()
        loops = [
            ConsumeLoop(
                js=js,
                spec=sub.spec,
                handler=sub.handler,
                concurrency=sub.concurrency,
                max_deliver=settings.max_deliver,
                ack_wait_s=settings.ack_wait_s,
                drain_timeout_s=settings.drain_timeout_s,
                ordering_key=sub.ordering_key,
            )
            for sub in parts.subscriptions
        ]
        log.info("service_started", service=name)
        await asyncio.gather(*(loop.run(stop) for loop in loops))
        if parts.on_stop:
            await parts.on_stop()
    finally:
        await nc.drain()
        log.info("service_stopped", service=name)
