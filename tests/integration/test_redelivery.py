"""A service that dies after publishing its outputs but before acking doubles nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import PubAck

from events.catalog import GoalCompleted
from events.model import Event, event_type
from events.subjects import EVENTS_STREAM
from infra.bus.publisher import EventPublisher
from infra.clients.goals import AgoraClient
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import all_events, duplicates


class SimulatedCrashError(RuntimeError):
    pass


class PublishThenCrashOnce(EventPublisher):
    """Publishes (the stream stores the outputs), then fails before the input is acked."""

    crashed_after: set[str] = set()

    async def __call__(
        self, events: Sequence[Event], *, new_goal: bool = False, **guard: Any
    ) -> list[PubAck]:
        acks = await super().__call__(events, new_goal=new_goal, **guard)
        first = events[0].event_id if events else None
        if first and first not in self.crashed_after:
            self.crashed_after.add(first)
            raise SimulatedCrashError(f"simulated crash after publishing {event_type(events[0])}")
        return acks


async def test_redelivery_after_crash_between_publish_and_ack_adds_no_duplicates(
    settings: Settings, nc: NatsClient, client: AgoraClient
) -> None:
    platform = InProcessPlatform(settings)
    # Every input of the planner, memory and evaluator is processed twice. The executor is left
    # out on purpose: a crash after tool_called rightly spends an attempt (at most once per
    # attempt), which a SIGKILL test covers separately.
    platform.start("planner", "memory", "evaluator", publisher=PublishThenCrashOnce)
    platform.start("executor")
    try:
        goal_ids = []
        for n in range(3):
            submitted = await client.submit(
                {
                    "text": f"goal {n}",
                    "steps": [
                        {"tool": "calculator", "args": {"expression": f"{n}+1"}},
                        {"tool": "echo", "args": {"text": "= {{steps.s1.output}}"}},
                    ],
                    "expect": {"contains": f"= {n + 1}"},
                }
            )
            goal_ids.append(submitted.goal_id)
        for goal_id in goal_ids:
            events = await client.wait_for_outcome(goal_id, timeout_s=60)
            assert isinstance(events[-1], GoalCompleted)
    finally:
        await platform.stop()

    assert PublishThenCrashOnce.crashed_after, "the crash was never injected"
    log = await all_events(nc)
    assert not duplicates(log)
    info = await nc.jetstream().stream_info(EVENTS_STREAM)
    assert info.state.messages == len(log)
    for goal_id in goal_ids:
        per_type = Counter(event_type(e) for e in log if e.goal_id == goal_id)
        assert per_type["goal_accepted"] == 1
        assert per_type["plan_created"] == 1
        assert per_type["task_scheduled"] == 2
        assert per_type["task_completed"] == 2
        assert per_type["memory_stored"] == 0  # memory indexes task_completed itself
        assert per_type["evaluation_completed"] == 1
        assert per_type["goal_completed"] == 1


class PublishFirstThenCrash(EventPublisher):
    """Stores the goal's acceptance, then dies before acking the command."""

    crashed: set[str] = set()

    async def __call__(
        self, events: Sequence[Event], *, new_goal: bool = False, **guard: Any
    ) -> list[PubAck]:
        if new_goal and events and events[0].goal_id not in self.crashed:
            self.crashed.add(events[0].goal_id)
            await super().__call__(events[:1], new_goal=True, **guard)
            raise SimulatedCrashError(f"crash after storing only {event_type(events[0])}")
        return await super().__call__(events, new_goal=new_goal, **guard)


async def test_a_crash_after_admitting_a_goal_admits_nothing_twice_and_it_completes(
    settings: Settings, nc: NatsClient, client: AgoraClient
) -> None:
    platform = InProcessPlatform(settings)
    platform.start("planner", publisher=PublishFirstThenCrash)
    platform.start("executor", "memory", "evaluator")
    try:
        submitted = await client.submit(
            {"text": "x", "steps": [{"tool": "echo", "args": {"text": "still here"}}]}
        )
        events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)
    finally:
        await platform.stop()
    assert submitted.goal_id in PublishFirstThenCrash.crashed
    assert isinstance(events[-1], GoalCompleted)
    kinds = [event_type(e) for e in events]
    assert kinds.count("goal_accepted") == 1
    assert kinds.count("plan_created") == 1


async def test_a_publish_the_stream_refuses_fails_at_once_with_the_reason(
    nc: NatsClient,
) -> None:
    from datetime import UTC, datetime

    from events.catalog import GoalCompleted as Completed
    from events.errors import EventTooLargeError
    from events.model import Stamp

    stamp = Stamp("planner@test", "g-huge", datetime.now(UTC), None, "g-huge")
    huge = Completed(
        **stamp.envelope("goal_completed", "x"), result="x" * 2_000_000, iterations=1, score=1.0
    )
    publisher = EventPublisher(nc, timeout_s=30)
    started = asyncio.get_running_loop().time()
    with pytest.raises(EventTooLargeError, match="goal_completed of 2,000,"):
        await publisher([huge])
    assert asyncio.get_running_loop().time() - started < 5, "a refusal must not wait out a timeout"
