"""Runs one service: connect, provision, start its consume loops, drain on stop.

Each service's composition root (``services/<name>/main.py``) exposes ``build(ctx)`` returning
the subscriptions it consumes and optional start/stop hooks; everything else is shared here.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from events.codec import decode_event
from events.errors import ConfigurationError
from events.model import Event
from infra.bus.connection import close_hot_path, connect, open_hot_path
from infra.bus.consume import ConsumeLoop, Delivery, Handler, OrderingKey, no_ordering
from infra.bus.core import CoreBus
from infra.bus.history import StreamGoalLog
from infra.bus.outputs import OutputStore
from infra.bus.pin import Pin
from infra.bus.publisher import EventPublisher
from infra.bus.redrive import redrive_subscriptions
from infra.bus.streams import ConsumerSpec, provision
from infra.llm import build_llm_port
from infra.logging import apply_deferred_logging, get_logger
from infra.platform.auth import check_secret_files
from infra.platform.stats import ServiceCounters, serve_stats
from infra.platform.topology import consumers_for, manifest_of
from infra.settings import Settings
from services.llm.port import LlmPort
from services.manifest import route

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
# What a composition root routes an event of its input to: the event and its delivery.
EventHandler = Callable[[Event, Delivery], Awaitable[None]]
# Service name -> module whose ``build(ctx)`` composes it.
BUILDERS = {
    "planner": "services.planner.main",
    "executor": "services.executor.main",
    "memory": "services.memory.main",
    "evaluator": "services.evaluator.main",
    "projector": "projections.service",
}
SERVICES = tuple(BUILDERS)
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
    # This replica's pin, when the consumer is pinned and the service watches who holds it.
    pin: Pin | None = None


@dataclass
class ServiceParts:
    subscriptions: list[Subscription]
    on_start: Callable[[], Awaitable[None]] | None = None
    on_stop: Callable[[], Awaitable[None]] | None = None
    # Loops that run beside the consume loops until the stop event is set.
    tasks: list[Callable[[asyncio.Event], Awaitable[None]]] = field(default_factory=list)


@dataclass
class ServiceContext:
    """What a composition root may wire into its service: adapters, never raw globals."""

    name: str
    settings: Settings
    nc: NatsClient
    js: JetStreamContext
    publish: EventPublisher
    goal_log: StreamGoalLog
    # Where large outputs live: the publisher stores them, readers resolve references.
    outputs: OutputStore
    producer: str
    now: Callable[[], datetime] = field(default=utc_now)
    # The language model behind every LLM strategy; None (the embedded default) means the
    # rule-based strategies run. Built once per process from the AGORA_LLM_* settings.
    llm: LlmPort | None = None

    def spec(self, stream: str) -> ConsumerSpec:
        """This service's consumer on ``stream`` (from its manifest)."""
        return next(s for s in consumers_for(self.name) if s.stream == stream)

    def pin(self, stream: str) -> Pin:
        """This replica's pin on its pinned consumer on ``stream``."""
        spec = self.spec(stream)
        if spec.priority_group is None:
            raise ConfigurationError(f"{self.name}'s input on {stream} is not pinned")
        return Pin(self.nc, spec.stream, spec.durable, spec.priority_group)

    def routed(self, stream: str, handlers: Mapping[type[Event], EventHandler]) -> Handler:
        """One delivery handler for this service's input on ``stream``: the event decoded, then
        handed to the handler of its class. ``handlers`` must cover exactly the event classes
        the manifest says the input consumes (``services.manifest.route``)."""
        routes = route(manifest_of(self.name).input_on(stream), handlers)

        async def dispatch(delivery: Delivery) -> None:
            event = decode_event(delivery.data)
            handler = routes.get(type(event))
            if handler is not None:  # the filters deliver nothing else; an old type is ignored
                await handler(await self.outputs.resolve(event), delivery)

        return dispatch


def _builder(name: str) -> Callable[[ServiceContext], ServiceParts]:
    if name not in BUILDERS:
        raise ConfigurationError(f"unknown service {name!r}; known: {', '.join(BUILDERS)}")
    module = importlib.import_module(BUILDERS[name])
    build: Callable[[ServiceContext], ServiceParts] = module.build
    return build


# The cyclic collector's youngest-generation threshold (CPython's default is 700 allocations).
# Every decision allocates a few thousand short-lived objects, so at 700 the collector ran
# several times per message, and its older generations walked the planner's cached state.
_GC_THRESHOLDS = (50_000, 20, 100)


def settle_long_lived_objects() -> None:
    """Move what start-up built (modules, settings, registries) out of the collector's sight,
    and collect young objects less often: 11 % of the planner's and executor's CPU was the
    cyclic collector (perf), 4-8 % of it is saved this way (CPU per goal, bench.profile)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


async def run_service(
    name: str,
    settings: Settings,
    stop: asyncio.Event,
    *,
    publisher: Callable[[CoreBus], EventPublisher] = EventPublisher,
) -> None:
    """Run ``name`` until ``stop`` is set. ``publisher`` is the adapter outputs go through."""
    apply_deferred_logging()  # the services' handlers log through structlog directly
    build = _builder(name)
    check_secret_files(settings)
    nc = await connect(settings, name=f"agora-{name}", identity=name)
    core = await open_hot_path(settings, nc, f"agora-{name}/hot-path", identity=name)
    js = nc.jetstream()
    llm = build_llm_port(settings, nc)
    outputs = OutputStore(js, settings.output_inline_bytes)
    publish = publisher(core)
    publish.outputs, publish.max_bytes = outputs, settings.max_message_bytes
    publish.atomic_fences = settings.stream_replicas > 1
    ctx = ServiceContext(
        name=name,
        settings=settings,
        nc=nc,
        js=js,
        publish=publish,
        goal_log=StreamGoalLog(nc, outputs),
        outputs=outputs,
        producer=producer_name(name),
        llm=llm,
    )
    try:
        parts = build(ctx)
        subscriptions = parts.subscriptions + redrive_subscriptions(parts.subscriptions)
        counters = ServiceCounters(name)
        await provision(js, settings, [(s.spec, 2 * s.concurrency) for s in subscriptions])
        if parts.on_start:
            await parts.on_start()
        loops = [
            ConsumeLoop(
                nc=nc,
                core=core,
                spec=sub.spec,
                handler=counters.track(sub.spec.stream, sub.spec.durable, sub.handler),
                concurrency=sub.concurrency,
                max_deliver=settings.max_deliver,
                ack_wait_s=settings.ack_wait_s,
                drain_timeout_s=settings.drain_timeout_s,
                pull_expires_s=settings.pull_expires_s,
                ordering_key=sub.ordering_key,
                pin=sub.pin,
                pinned_timeout_s=settings.pinned_timeout_s,
            )
            for sub in subscriptions
        ]
        stats = await serve_stats(nc, counters, VERSION)
        settle_long_lived_objects()
        log.info("service_started", service=name)
        await asyncio.gather(
            *(loop.run(stop) for loop in loops), *(task(stop) for task in parts.tasks)
        )
        await stats.stop()  # on an error, draining the connection below ends it too
        if parts.on_stop:
            await parts.on_stop()
    finally:
        if llm is not None:
            await llm.aclose()
        await close_hot_path(core)
        await nc.drain()
        log.info("service_stopped", service=name)
