"""Helpers for tests against the real broker: read the whole log, wait on conditions."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient

from events.model import Event, event_type
from infra.bus.history import read_events


async def all_events(nc: NatsClient, subject: str = "agora.events.>") -> list[Event]:
    return [event async for _, event in read_events(nc, subject)]


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Poll a condition until it holds; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


def types_of(events: list[Event]) -> list[str]:
    return [event_type(e) for e in events]


def duplicates(events: list[Event]) -> dict[str, int]:
    counts = Counter(e.event_id for e in events)
    return {event_id: n for event_id, n in counts.items() if n > 1}
