"""A SIGKILLed executor resumes exactly once; 200 concurrent goals lose and double nothing."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Callable
from subprocess import Popen

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted, TaskCompleted, ToolCalled, ToolFailed
from events.model import event_type
from events.subjects import EVENTS_STREAM
from infra.clients.goals import AgoraClient
from tests.conftest import InProcessPlatform
from tests.support import all_events, duplicates, wait_until


@pytest.mark.slow
async def test_executor_sigkilled_mid_task_then_restarted_completes_each_task_once(
    nc: NatsClient,
    client: AgoraClient,
    platform: InProcessPlatform,
    spawn_service: Callable[..., Popen[bytes]],
) -> None:
    await platform.stop("executor")  # this test runs the executor as its own OS process
    executor = spawn_service("executor")
    submitted = await client.submit(
        {
            "text": "a slow step, then a quick one",
            "steps": [
                {"tool": "sleep", "args": {"seconds": 2.0}},
                {"tool": "echo", "args": {"text": "after the slow step"}},
            ],
        }
    )
    called = []

    async def slow_step_running() -> bool:
        called[:] = [
            e
            for e in await all_events(nc, f"agora.events.{submitted.goal_id}.>")
            if isinstance(e, ToolCalled)
        ]
        return bool(called)

    await wait_until(slow_step_running, timeout_s=20, what="the slow tool call to start")
    executor.send_signal(signal.SIGKILL)
    assert executor.wait(5) == -signal.SIGKILL
    spawn_service("executor")

    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=40)

    assert isinstance(events[-1], GoalCompleted)
    completed = Counter(e.task_id for e in events if isinstance(e, TaskCompleted))
    assert completed == {"s1": 1, "s2": 1}
    # The interrupted call is on record as a failed attempt; the retry is attempt 2.
    s1_calls = [e.attempt for e in events if isinstance(e, ToolCalled) and e.task_id == "s1"]
    assert s1_calls == [1, 2]
    interrupted = [e for e in events if isinstance(e, ToolFailed) and e.task_id == "s1"]
    assert [e.attempt for e in interrupted] == [1]
    assert not duplicates(await all_events(nc))


@pytest.mark.slow
async def test_200_concurrent_goals_all_complete_with_nothing_lost_or_doubled(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    n = 200
    commands = [
        {
            "goal_id": f"load-{i}",
            "text": f"load goal {i}",
            "steps": [
                {"tool": "calculator", "args": {"expression": f"{i}*2"}},
                {"tool": "echo", "args": {"text": "{{steps.s1.output}}"}},
                {"tool": "echo", "args": {"text": "done {{steps.s2.output}}"}},
            ],
            "expect": {"equals": f"done {i * 2}"},
        }
        for i in range(n)
    ]
    await asyncio.gather(*(client.submit(c) for c in commands))
    js = nc.jetstream()

    async def all_finished() -> bool:
        info = await js.stream_info(EVENTS_STREAM, subjects_filter="agora.events.*.goal_completed")
        return len(info.state.subjects or {}) >= n

    await wait_until(all_finished, timeout_s=90, what=f"{n} goals to complete")

    log = await all_events(nc)
    assert not duplicates(log)
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.messages == len(log), "the stream holds a message that is not an event"
    per_goal = Counter((e.goal_id, event_type(e)) for e in log)
    expected_per_goal = {
        "goal_accepted": 1,
        "plan_created": 1,
        "task_scheduled": 3,
        "tool_called": 0,  # calculator and echo: each task_completed records its call
        "task_completed": 3,
        "evaluation_requested": 1,
        "evaluation_completed": 1,
        "goal_completed": 1,
    }
    for command in commands:
        goal_id = str(command["goal_id"])
        got = {kind: per_goal[(goal_id, kind)] for kind in expected_per_goal}
        assert got == expected_per_goal, goal_id
        assert sum(1 for (g, _) in per_goal.elements() if g == goal_id) == sum(
            expected_per_goal.values()
        )
    results = {e.goal_id: e.result for e in log if isinstance(e, GoalCompleted)}
    assert results == {f"load-{i}": f"done {i * 2}" for i in range(n)}
