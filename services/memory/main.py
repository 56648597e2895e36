"""Composition root of memory: an in-memory index rebuilt from the log at start-up."""

from __future__ import annotations

from events.catalog import ContextRequested, MemoryStored, TaskCompleted
from events.codec import decode_event
from events.model import Stamp
from events.subjects import EVENTS_STREAM, event_type_filter
from infra.bus import read_events
from infra.consume import Delivery
from infra.logging import get_logger
from infra.runner import ServiceContext, ServiceParts, Subscription
from services.memory.decide import observe, provide_context
from services.memory.index import MemoryIndex

__all__ = ["build"]

log = get_logger("agora.memory")


def build(ctx: ServiceContext) -> ServiceParts:
    index = MemoryIndex()

    async def rebuild_index() -> None:
        async for _, event in read_events(ctx.nc, event_type_filter("memory_stored")):
            if isinstance(event, MemoryStored):
                index.add(event)
        log.info("memory_index_rebuilt", items=len(index))

    async def handle(delivery: Delivery) -> None:
        event = decode_event(delivery.data)
        stamp = Stamp.caused_by(event, producer=ctx.producer, now=ctx.now())
        if isinstance(event, ContextRequested):
            await ctx.publish([provide_context(index, event, stamp)])
        elif isinstance(event, TaskCompleted):
            stored = observe(event, stamp)
            await ctx.publish(stored)
            for item in stored:
                index.add(item)

    return ServiceParts(
        [Subscription(ctx.spec(EVENTS_STREAM), handle, ctx.settings.concurrency)],
        on_start=rebuild_index,
    )
