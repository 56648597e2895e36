"""GoalHistory: a goal's events after a known sequence, read in batches from a real stream."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.aio.client import Client as NatsClient

from events.catalog import MemoryStored
from events.model import Event
from infra.bus.history import GoalHistory
from infra.bus.publisher import EventPublisher

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _memory(goal_id: str, n: int) -> Event:
    return MemoryStored(
        event_id=f"{goal_id}-{n}",
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id=None,
        correlation_id=goal_id,
        producer="memory@test",
        key=f"{goal_id}/{n}",
        text=f"item {n}",
        source_event_id=f"src-{n}",
    )


async def test_since_returns_only_the_goals_events_after_the_sequence_across_batches(
    nc: NatsClient,
) -> None:
    publish = EventPublisher(nc)
    # Two goals interleaved, more events than one batch (256) for the first.
    mine: list[int] = []
    for n in range(600):
        acks = await publish([_memory("g-a", n), _memory("g-b", n)])
        mine.append(acks[0].seq)
    history = GoalHistory(nc)

    everything = await history.since("g-a", 0)
    assert [e.event_id for e in everything.events] == [f"g-a-{n}" for n in range(600)]
    assert everything.last_seq == mine[-1]

    tail = await history.since("g-a", mine[99])
    assert [e.event_id for e in tail.events] == [f"g-a-{n}" for n in range(100, 600)]
    assert tail.last_seq == mine[-1]

    nothing = await history.since("g-a", mine[-1])
    assert nothing.events == []
    assert nothing.last_seq == mine[-1]
    unknown = await history.since("g-none", 0)
    assert (unknown.events, unknown.last_seq) == ([], 0)
