"""Flow control under SIGKILL: a key limited to 3, its goals running and waiting, the planner
and then nats-server killed mid-run and restarted. Every goal completes exactly once, its side
effect ran once, and the log never shows more than 3 of the key running (counted in stream
order from goal_dequeued to the outcome). Full scale only (``make faults``); the suite's
integration test covers a planner restart with goals waiting.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from events.catalog import (
    GoalCancelled,
    GoalCompleted,
    GoalDequeued,
    GoalFailed,
    GoalQueued,
    ToolCalled,
)
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.platform.embedded import EmbeddedNats
from infra.platform.runner import SERVICES
from tests.faults.conftest import report
from tests.faults.harness import (
    CALLS_DIR,
    ServiceProcesses,
    count_finished,
    fault_settings,
    goal_command,
    submit_all,
    wait_all_finished,
)
from tests.support import all_events, duplicates, wait_until

LIMIT = 3
POLICY = f'{{"limits": [{{"key": "tenant", "value": "a", "concurrency": {LIMIT}}}]}}'


def _limited_goal(n: int) -> dict[str, object]:
    command = goal_command("fl", n)
    command["metadata"] = {"tenant": "a"}
    steps = command["steps"]
    assert isinstance(steps, list)
    # A goal holds its slot a while; the result is then the sleep's, so nothing is expected.
    command["steps"] = [*steps, {"tool": "sleep", "args": {"seconds": 0.2}}]
    del command["expect"]
    return command


@pytest.mark.faults
async def test_a_limited_key_never_runs_more_than_its_limit_through_kills(tmp_path: Path) -> None:
    goals = 60
    server = EmbeddedNats(tmp_path / "nats", durability="os").start()
    settings = fault_settings(tmp_path, server.url, flow_policy=POLICY)
    nc = await connect(settings, "flow-fault-test")
    services = ServiceProcesses(settings, log_dir=tmp_path / "logs")
    try:
        await provision(nc.jetstream(), settings)
        for name in SERVICES:
            services.start(name)
        goal_ids = await submit_all(AgoraClient(nc), [_limited_goal(n) for n in range(goals)])

        async def some_finished(n: int) -> bool:
            try:
                return await count_finished(nc) >= n
            except Exception:
                return False  # the server is restarting

        await wait_until(lambda: some_finished(6), timeout_s=60, what="the first goals")
        services.kill("planner")
        services.start("planner")
        await wait_until(lambda: some_finished(20), timeout_s=90, what="goals after the restart")
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        server.stop()
        server.start()
        await wait_all_finished(nc, goals, timeout_s=180)
        log = await all_events(nc)
    finally:
        services.stop_all()
        await nc.close()
        server.stop()

    assert not duplicates(log)
    ends = [e for e in log if isinstance(e, GoalCompleted | GoalFailed | GoalCancelled)]
    assert sorted(e.goal_id for e in ends) == sorted(goal_ids)
    assert all(isinstance(e, GoalCompleted) for e in ends)
    running: set[str] = set()
    most = 0
    for event in log:
        if isinstance(event, GoalDequeued):
            running.add(event.goal_id)
            most = max(most, len(running))
        elif isinstance(event, GoalCompleted):
            running.discard(event.goal_id)
    assert most <= LIMIT
    waited = {e.goal_id for e in log if isinstance(e, GoalQueued)}
    assert waited, "no goal waited: the limit was never reached"
    for goal_id in goal_ids:
        lines = (settings.workspace / CALLS_DIR / f"{goal_id}.s2.txt").read_text().splitlines()
        attempts = sum(
            1
            for e in log
            if isinstance(e, ToolCalled) and e.goal_id == goal_id and e.task_id == "s2"
        )
        assert 1 <= len(lines) <= attempts  # the side effect ran at most once per attempt
    report(
        f"flow control through kills: {goals} goals of a key limited to {LIMIT}, the planner "
        f"and nats-server SIGKILLed: all completed once, at most {most} running, "
        f"{len(waited)} waited"
    )
