"""Flow control on a real JetStream with every service: concurrency per key, priority, rate,
and a planner restart while goals wait.

Every check reads the log: a goal of a key runs from its ``goal_dequeued`` to its outcome, so
the number running at any point is counted in stream order, not sampled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import (
    GoalAccepted,
    GoalCancelled,
    GoalCompleted,
    GoalDequeued,
    GoalFailed,
    GoalQueued,
    TaskScheduled,
)
from events.model import Event
from infra.clients.goals import AgoraClient
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import all_events, duplicates, wait_until

_ENDS = (GoalCompleted, GoalFailed, GoalCancelled)


def _goal(goal_id: str, *, step: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"goal_id": goal_id, "text": goal_id, "steps": [step], **extra}


def _echo(goal_id: str, **extra: Any) -> dict[str, Any]:
    return _goal(goal_id, step={"tool": "echo", "args": {"text": goal_id}}, **extra)


@pytest.fixture
async def flow_platform(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[InProcessPlatform]:
    running = InProcessPlatform(replace(settings, flow_policy=request.param))
    running.start()
    yield running
    await running.stop()


async def _ended(nc: NatsClient, goal_ids: set[str], timeout_s: float = 30.0) -> list[Event]:
    log: list[Event] = []

    async def all_ended() -> bool:
        log[:] = await all_events(nc)
        return goal_ids <= {e.goal_id for e in log if isinstance(e, _ENDS)}

    await wait_until(all_ended, timeout_s=timeout_s, what=f"{len(goal_ids)} goals to end")
    return log


def _most_running(log: list[Event], goal_ids: set[str]) -> int:
    """The most goals of ``goal_ids`` between their goal_dequeued and their outcome, in
    stream order."""
    running: set[str] = set()
    most = 0
    for event in log:
        if event.goal_id not in goal_ids:
            continue
        if isinstance(event, GoalDequeued):
            running.add(event.goal_id)
            most = max(most, len(running))
        elif isinstance(event, _ENDS):
            running.discard(event.goal_id)
    return most


def _first_seq(log: list[Event], kind: type[Event], goal_id: str) -> int:
    return next(n for n, e in enumerate(log) if isinstance(e, kind) and e.goal_id == goal_id)


# Tenant a: 3 at once (tenant b has no rule, so nothing limits it); user u: 2 starts a half
# second. One platform serves both scenarios, side by side.
TENANT_A_3_AND_A_RATE = (
    '{"limits": [{"key": "tenant", "value": "a", "concurrency": 3},'
    ' {"key": "user", "rate": {"goals": 2, "per_s": 0.5}}]}'
)


@pytest.mark.parametrize("flow_platform", [TENANT_A_3_AND_A_RATE], indirect=True)
async def test_a_key_limited_to_3_never_runs_more_another_is_not_held_back_and_a_rate_holds(
    nc: NatsClient, client: AgoraClient, flow_platform: InProcessPlatform
) -> None:
    a_goals = {f"a-{n}" for n in range(50)}
    b_goals = {f"b-{n}" for n in range(50)}
    rated = [f"r-{n}" for n in range(6)]
    for goal_id in rated:
        await client.submit(_echo(goal_id, metadata={"user": "u"}))
    sleep = {"tool": "sleep", "args": {"seconds": 0.2}}
    for n in range(50):
        await client.submit(_goal(f"a-{n}", step=sleep, metadata={"tenant": "a"}))
    for n in range(50):
        await client.submit(_goal(f"b-{n}", step=sleep, metadata={"tenant": "b"}))
    log = await _ended(nc, a_goals | b_goals | set(rated), timeout_s=60)

    assert not duplicates(log)
    assert all(isinstance(e, GoalCompleted) for e in log if isinstance(e, _ENDS))
    assert _most_running(log, a_goals) <= 3
    queued = [e for e in log if isinstance(e, GoalQueued) and e.goal_id in a_goals]
    assert queued, "no goal of tenant a ever waited: the test did not exercise the limit"
    assert all(e.keys == ("tenant=a",) and e.reason == "tenant=a: 3 of 3 running" for e in queued)
    # Nothing of a goal is planned before it leaves the queue.
    for goal_id in a_goals:
        assert _first_seq(log, GoalDequeued, goal_id) < _first_seq(log, TaskScheduled, goal_id)
    # Tenant b is limited by nothing: it never queues, and every one of its goals, submitted
    # after all of tenant a's, has finished while tenant a's goals still wait their turn.
    assert not any(isinstance(e, GoalQueued | GoalDequeued) and e.goal_id in b_goals for e in log)
    last_b_end = max(n for n, e in enumerate(log) if isinstance(e, _ENDS) and e.goal_id in b_goals)
    last_a_start = max(
        n for n, e in enumerate(log) if isinstance(e, GoalDequeued) and e.goal_id in a_goals
    )
    assert last_b_end < last_a_start
    # User u: never more than 2 starts in any half second, the rest waited for the window.
    starts = sorted(
        e.occurred_at for e in log if isinstance(e, GoalDequeued) and e.goal_id in rated
    )
    assert len(starts) == len(rated)
    for earlier, later in zip(starts, starts[2:], strict=False):
        assert (later - earlier).total_seconds() >= 0.5
    assert any(
        e.reason == "user=u: 2 started in the last 0.5 s (rate 2 per 0.5 s)"
        for e in log
        if isinstance(e, GoalQueued)
    )


async def _until_dequeued(nc: NatsClient, goal_id: str) -> None:
    async def dequeued() -> bool:
        log = await all_events(nc, f"agora.events.{goal_id}.goal_dequeued")
        return bool(log)

    await wait_until(dequeued, timeout_s=20, what=f"{goal_id} to take its slot")


async def _until_queued(client: AgoraClient, goal_ids: list[str]) -> None:
    """The goals view shows every one of ``goal_ids`` as queued."""
    listed = ", ".join(f"'{goal_id}'" for goal_id in goal_ids)

    async def all_queued() -> bool:
        reply = await client.query(
            f"SELECT count(*) FROM goals WHERE status = 'queued' AND goal_id IN ({listed})"
        )
        return reply.rows == [[len(goal_ids)]]

    await wait_until(all_queued, timeout_s=20, what=f"{goal_ids} queued in the goals view")


ONE_AT_A_TIME = '{"limits": [{"key": "*", "concurrency": 1}]}'


@pytest.mark.parametrize("flow_platform", [ONE_AT_A_TIME], indirect=True)
async def test_waiting_goals_start_by_priority_then_submission_across_a_planner_restart(
    nc: NatsClient, client: AgoraClient, flow_platform: InProcessPlatform
) -> None:
    await client.submit(_goal("blocker", step={"tool": "sleep", "args": {"seconds": 30}}))
    await _until_dequeued(nc, "blocker")
    for goal_id, priority in [("low", -5), ("mid-1", 0), ("high", 9)]:
        await client.submit(_echo(goal_id, priority=priority))
    await _until_queued(client, ["low", "mid-1", "high"])
    await flow_platform.stop("planner")
    # Submitted while no planner runs: admitted after the restart, which rebuilt who holds
    # the slot and who waits from the log, so it waits too (behind mid-1, same priority).
    await client.submit(_echo("mid-2"))
    flow_platform.start("planner")
    await _until_queued(client, ["low", "mid-1", "high", "mid-2"])
    await client.cancel("blocker", reason="make room")
    log = await _ended(nc, {"blocker", "low", "mid-1", "high", "mid-2"})

    assert not duplicates(log)
    starts = [e.goal_id for e in log if isinstance(e, GoalDequeued)]
    assert starts == ["blocker", "high", "mid-1", "mid-2", "low"]
    assert _most_running(log, {e.goal_id for e in log}) == 1
    accepted = {e.goal_id: e.priority for e in log if isinstance(e, GoalAccepted)}
    assert accepted["high"] == 9
    assert accepted["low"] == -5
