"""Scenarios 3 and 4: replicas of the planner and the executor share their consumers.

4. Two replicas of each, together: no goal gets conflicting decisions (two plans for one
   iteration, a task run twice), every side effect ran exactly once.
3. One replica of each paused with SIGSTOP past its ack wait, then resumed: its inputs are
   redelivered to the other replica, and its late publishes and acks double nothing.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import ToolCalled
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.clients.query import projector_caught_up
from infra.platform.embedded import EmbeddedNats
from projections.service import database_path
from tests.faults.checker import (
    Verdict,
    check_projection,
    check_side_effects,
    collect,
    count_lines,
)
from tests.faults.conftest import report
from tests.faults.harness import (
    CALLS_DIR,
    ServiceProcesses,
    count_finished,
    fault_settings,
    submit_all,
    wait_all_finished,
)
from tests.support import all_events, wait_until

REPLICATED = ("planner", "executor")
SINGLE = ("memory", "evaluator", "projector")


def parallel_goal(n: int, sleep_s: float) -> dict[str, Any]:
    """A DAG: two independent steps (one slow, one with a side effect), then one joining them,
    so one goal's events are decided by both replicas at once."""
    goal_id = f"p-{n}"
    return {
        "command_id": f"cmd-{goal_id}",
        "goal_id": goal_id,
        "text": f"parallel goal {n}",
        "steps": [
            {"id": "slow", "tool": "sleep", "args": {"seconds": sleep_s}},
            {
                "id": "effect",
                "tool": "append_line",
                "args": {"path": f"{CALLS_DIR}/{goal_id}.effect.txt", "line": "ran"},
            },
            {"id": "calc", "tool": "calculator", "args": {"expression": f"{n}+1"}},
            {
                "id": "join",
                "tool": "echo",
                "args": {"text": "joined {{steps.calc.output}}"},
                "depends_on": ["slow", "effect", "calc"],
            },
        ],
        "expect": {"equals": f"joined {n + 1}"},
    }


async def finish_and_check(
    scenario: str, nc: NatsClient, services: ServiceProcesses, goal_ids: list[str], tmp: Path
) -> Verdict:
    await wait_all_finished(nc, len(goal_ids), timeout_s=120)
    await projector_caught_up(nc, timeout_s=60)
    services.stop_all()
    verdict = await collect(scenario, nc, goal_ids)
    log = await all_events(nc)
    check_side_effects(verdict, log, count_lines(services.settings.workspace / CALLS_DIR))
    await check_projection(verdict, nc, database_path(services.settings), tmp / "rebuilt.duckdb")
    verdict.counts["retried_attempts"] = sum(
        1 for e in log if isinstance(e, ToolCalled) and e.attempt > 1
    )
    return verdict


@pytest.mark.faults
async def test_two_replicas_of_planner_and_executor_take_no_conflicting_decisions(
    tmp_path: Path,
) -> None:
    goals = 300
    server = EmbeddedNats(tmp_path / "nats", durability="os").start()
    # No fault here: a long ack wait keeps a starved event loop on this shared machine from
    # looking like one (a late heartbeat would hand a task to the other replica).
    settings = fault_settings(tmp_path, server.url, ack_wait_s=30.0)
    nc = await connect(settings, "fault-test")
    services = ServiceProcesses(settings, log_dir=tmp_path / "logs")
    try:
        await provision(nc.jetstream(), settings)
        for name in REPLICATED:
            services.start(name, "-1")
            services.start(name, "-2")
        for name in SINGLE:
            services.start(name)
        commands = [parallel_goal(n, 0.05) for n in range(goals)]
        goal_ids = await submit_all(AgoraClient(nc), commands)
        verdict = await finish_and_check("4 two replicas", nc, services, goal_ids, tmp_path)
        report(verdict.line())
        assert verdict.ok, verdict.explain()
        assert verdict.completed == goals
        # No fault was injected: every side effect ran exactly once, in one attempt.
        assert verdict.counts["side_effects"] == goals
        assert verdict.counts["retried_attempts"] == 0
    finally:
        services.stop_all()
        await nc.close()
        server.stop()


@pytest.mark.faults
async def test_replicas_paused_past_their_ack_wait_double_nothing_when_they_resume(
    tmp_path: Path,
) -> None:
    goals = 60
    server = EmbeddedNats(tmp_path / "nats", durability="os").start()
    settings = fault_settings(tmp_path, server.url)
    nc = await connect(settings, "fault-test")
    services = ServiceProcesses(settings, log_dir=tmp_path / "logs")
    try:
        await provision(nc.jetstream(), settings)
        # Replica 1 alone first, so that it surely holds inputs when it is paused.
        for name in REPLICATED:
            services.start(name, "-1")
        for name in SINGLE:
            services.start(name)
        commands = [parallel_goal(n, 2.0) for n in range(goals)]
        goal_ids = await submit_all(AgoraClient(nc), commands)

        async def slow_steps_running() -> bool:
            calls = await all_events(nc, "agora.events.*.tool_called")
            return sum(1 for e in calls if getattr(e, "task_id", "") == "slow") >= goals // 2

        await wait_until(slow_steps_running, timeout_s=60, what="slow steps to be running")
        for name in REPLICATED:
            services.start(name, "-2")
        paused_at = await count_finished(nc)
        for name in REPLICATED:
            services.signal(f"{name}-1", signal.SIGSTOP)
        # Paused for twice the ack wait: the server redelivers what they held to the others.
        await asyncio.sleep(2 * settings.ack_wait_s + 1)  # the fault's duration, not a wait
        for name in REPLICATED:
            services.signal(f"{name}-1", signal.SIGCONT)
        resumed = time.monotonic()
        verdict = await finish_and_check(
            "3 replicas SIGSTOPped past ack wait", nc, services, goal_ids, tmp_path
        )
        verdict.counts["finished_when_paused"] = paused_at
        verdict.counts["seconds_after_resume"] = round(time.monotonic() - resumed)
        report(verdict.line())
        assert verdict.ok, verdict.explain()
        assert paused_at < goals, "the replicas were paused after the run, not during it"
        # Proof the pause mattered: some slow steps were taken over by the other replica.
        assert verdict.counts["retried_attempts"] >= 1
    finally:
        services.stop_all()
        await nc.close()
        server.stop()
