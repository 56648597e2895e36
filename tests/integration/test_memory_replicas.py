"""Two memory replicas follow one log: both recall everything, each decision is written once."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted, MemoryCompacted, MemoryStored, TaskCompleted
from events.model import event_type
from infra.bus.publisher import EventPublisher
from infra.clients.goals import AgoraClient
from infra.clients.memory import ask_memory
from infra.platform.runner import run_service
from infra.settings import Settings
from services.memory.protocol import MemoryRequest
from tests.conftest import InProcessPlatform
from tests.support import all_events, wait_until

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _completed(goal: str, n: int) -> TaskCompleted:
    return TaskCompleted(
        event_id=f"tc-{goal}-{n}",
        goal_id=goal,
        occurred_at=NOW,
        causation_id=None,
        correlation_id=goal,
        producer="executor@0.1.0",
        iteration=1,
        task_id=f"s{n}",
        tool="http_get",
        output=f"page {n}: product {n % 11} costs {100 + n} euros, says the long page text.",
        attempts=1,
        duration_ms=1.0,
    )


async def test_two_replicas_compact_and_teach_once_and_both_answer(
    nc: NatsClient, client: AgoraClient, settings: Settings
) -> None:
    tight = replace(settings, memory_working_tokens=300)
    platform = InProcessPlatform(tight)
    platform.start("planner", "executor", "evaluator")
    stops = [asyncio.Event(), asyncio.Event()]
    replicas = [asyncio.ensure_future(run_service("memory", tight, stop)) for stop in stops]
    try:
        # Observations arriving in many small batches: each replica decides compactions.
        publish = EventPublisher(nc)
        for start in range(0, 200, 10):
            await publish([_completed("g-long", n) for n in range(start, start + 10)])
        # A goal revised once, then accepted: its lesson is due.
        revised = await client.submit(
            {
                "goal_id": "g-revised",
                "text": "wait for a slow step",
                "steps": [{"tool": "sleep", "args": {"seconds": 0.3}, "timeout_s": 0.2}],
            }
        )
        outcome = await client.wait_for_outcome(revised.goal_id, timeout_s=30)
        assert isinstance(outcome[-1], GoalCompleted)
        assert outcome[-1].iterations == 2

        async def taught() -> bool:
            return bool(await all_events(nc, "agora.events.g-revised.memory_stored"))

        await wait_until(taught, timeout_s=30, what="the lesson of g-revised")

        async def within_budget() -> bool:
            working = (await ask_memory(nc, MemoryRequest(op="working", goal_id="g-long"))).working
            return int(working["observed"]) == 200 and int(working["tokens"]) <= 300

        await wait_until(within_budget, timeout_s=30, what="g-long within its budget")
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*replicas)
        await platform.stop()

    log = await all_events(nc)
    ids = Counter(e.event_id for e in log)
    assert not [i for i, n in ids.items() if n > 1]
    lessons = [e for e in log if isinstance(e, MemoryStored) and e.goal_id == "g-revised"]
    assert len(lessons) == 1  # both replicas decided it; one copy is stored
    compactions = [e for e in log if isinstance(e, MemoryCompacted) and e.goal_id == "g-long"]
    assert compactions
    # Never two compactions of the same observations.
    through = [e.through_ordinal for e in compactions]
    assert through == sorted(set(through))
    assert all(event_type(e) != "memory_stored" or e.goal_id == "g-revised" for e in log)
