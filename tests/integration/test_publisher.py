"""EventPublisher under concurrency: each call gets its own acks and keeps no reply state after."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted
from events.errors import EventTooLargeError
from events.model import Event, Stamp
from events.subjects import EVENTS_STREAM
from infra.bus.publisher import EventPublisher


def _completed(goal_id: str, result: str) -> Event:
    stamp = Stamp("planner@test", goal_id, datetime.now(UTC), None, goal_id)
    return GoalCompleted(
        **stamp.envelope("goal_completed", result[:8]), result=result, iterations=1, score=1.0
    )


async def test_concurrent_calls_each_get_their_own_acks_in_order(nc: NatsClient) -> None:
    publisher = EventPublisher(nc, timeout_s=30)
    calls = [
        [_completed(f"pub-{n}", f"r{n}-{i}") for i in range(5)]
        for n in range(40)
    ]  # fmt: skip
    results = await asyncio.gather(*(publisher(events) for events in calls))
    for acks in results:
        seqs = [ack.seq for ack in acks]
        assert len(seqs) == 5
        assert seqs == sorted(seqs), "one call's events are stored in the order given"
    every_seq = [ack.seq for acks in results for ack in acks]
    assert len(set(every_seq)) == len(every_seq), "no ack was handed to two callers"
    assert publisher._waiting == {}  # the reply bookkeeping is the point


async def test_a_refused_call_leaves_no_reply_pending_and_the_next_call_works(
    nc: NatsClient,
) -> None:
    publisher = EventPublisher(nc, timeout_s=30)
    huge = _completed("pub-huge", "x" * 2_000_000)
    # Over the limit: refused before anything of the call is sent, never retried in vain.
    with pytest.raises(EventTooLargeError, match="goal_completed of 2,000,"):
        await publisher([_completed("pub-a", "a"), huge, _completed("pub-b", "b")])
    assert publisher._waiting == {}
    assert (await nc.jetstream().stream_info(EVENTS_STREAM)).state.messages == 0
    [ack] = await publisher([_completed("pub-c", "c")])
    assert ack.seq > 0
    assert publisher._waiting == {}
