"""Memory restarted after 20,000 stored items: snapshot + tail, answers unchanged."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NatsClient

from events.catalog import MemoryStored
from events.model import MemoryItem
from infra.bus.publisher import EventPublisher
from infra.clients.memory import MemoryQueryError, ask_memory
from infra.settings import Settings
from services.memory.follower import IndexFollower
from services.memory.protocol import MemoryRequest
from tests.conftest import InProcessPlatform
from tests.support import wait_until

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
ITEMS = 20_000
TAIL = 250
QUERIES = (
    "copper turbine north",
    "invoice 417",
    "silent harbor",
    "quarterly amber valve",
    "item 19999",
    "report from delta station",
)
# fmt: off
ADJECTIVES = ("amber", "silent", "copper", "rapid", "quarterly", "hidden", "broken", "fresh",
              "northern", "minor", "urgent", "steady", "lost")
NOUNS = ("turbine", "invoice", "harbor", "valve", "ledger", "antenna", "pipeline", "contract",
         "satellite", "warehouse", "reactor", "bridge", "server", "shipment", "budget", "sensor",
         "forecast")
PLACES = ("north", "delta station", "the east wing", "site 4", "the lab", "port 9", "the depot",
          "zone c", "the archive", "basement 2", "the south yard")
# fmt: on


def item(n: int) -> MemoryStored:
    goal_id = f"g-bulk-{n // 100}"
    text = (
        f"item {n}: the {ADJECTIVES[n % 13]} {NOUNS[n % 17]} near {PLACES[n % 11]} "
        f"reported {n % 997} on invoice {n % 431}"
    )
    return MemoryStored(
        event_id=f"ms-{n}",
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id=None,
        correlation_id=goal_id,
        producer="memory@0.1.0",
        key=f"{goal_id}/1/s{n}",
        text=text,
        source_event_id=f"tc-{n}",
    )


async def publish_items(nc: NatsClient, numbers: range) -> int:
    publish = EventPublisher(nc)
    last = 0
    chunk = 2_000
    for start in range(numbers.start, numbers.stop, chunk):
        acks = await publish([item(n) for n in range(start, min(start + chunk, numbers.stop))])
        last = acks[-1].seq
    return last


async def stats(nc: NatsClient) -> dict[str, Any]:
    return (await ask_memory(nc, MemoryRequest(op="stats"))).stats


async def wait_folded(nc: NatsClient, seq: int) -> dict[str, Any]:
    current: dict[str, Any] = {}

    async def folded() -> bool:
        nonlocal current
        try:
            current = await stats(nc)
        except MemoryQueryError:  # still starting
            return False
        return int(current["applied_seq"]) >= seq

    await wait_until(folded, timeout_s=60, what=f"memory to fold sequence {seq}")
    return current


async def answers(nc: NatsClient) -> list[list[MemoryItem]]:
    return [
        (await ask_memory(nc, MemoryRequest(op="search", query=q, k=10, as_of=NOW))).items
        for q in QUERIES
    ]


async def full_rebuild_answers(nc: NatsClient) -> list[list[MemoryItem]]:
    """What a memory folding the whole log from scratch answers (no snapshot store)."""
    rebuilt = IndexFollower(nc, snapshot_every=ITEMS)
    await rebuilt.load()
    assert rebuilt.replayed_at_start == ITEMS + TAIL
    return [rebuilt.state.long_term.search(q, 10, now=NOW) for q in QUERIES]


async def test_restart_after_20000_items_loads_the_snapshot_and_replays_only_the_tail(
    nc: NatsClient, settings: Settings
) -> None:
    platform = InProcessPlatform(replace(settings, memory_snapshot_every=10_000))
    platform.start("memory")
    try:
        started = time.monotonic()
        last = await publish_items(nc, range(ITEMS))
        first_run = await wait_folded(nc, last)
        print(f"\n20,000 items published and folded in {time.monotonic() - started:.2f}s")
        assert first_run["items"] == ITEMS
        before = await answers(nc)
        assert all(before), "every query finds something"
        await platform.stop("memory")  # a clean stop saves a snapshot covering ``last``

        platform.start("memory")
        restarted = await wait_folded(nc, last)
        assert restarted["snapshot_seq"] == last
        assert restarted["replayed_at_start"] == 0
        assert await answers(nc) == before
        await platform.stop("memory")

        # Items stored while memory is down: the restart replays exactly those.
        last = await publish_items(nc, range(ITEMS, ITEMS + TAIL))
        started = time.monotonic()
        platform.start("memory")
        tail_run = await wait_folded(nc, last)
        print(f"restart with a {TAIL}-event tail answered in {time.monotonic() - started:.2f}s")
        assert tail_run["snapshot_seq"] == last - TAIL
        assert tail_run["replayed_at_start"] == TAIL
        assert tail_run["items"] == ITEMS + TAIL
        assert await answers(nc) == await full_rebuild_answers(nc)
    finally:
        await platform.stop()
