"""``agora demo``: real nats-server, every service a process, sample goals, their trajectories."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted
from events.model import Event
from infra.bus.connection import connect
from infra.clients.goals import AgoraClient
from infra.clients.query import ask, projector_caught_up
from infra.platform.supervisor import Supervisor
from infra.settings import Settings
from projections.protocol import QueryReply

__all__ = ["SAMPLE_GOALS", "DemoGoal", "DemoReport", "run_demo"]

SAMPLE_GOALS: list[tuple[str, dict[str, Any]]] = [
    (
        "explicit steps",
        {
            "text": "compute 17*23 then summarize",
            "steps": [
                {"tool": "calculator", "args": {"expression": "17*23"}},
                {"tool": "echo", "args": {"text": "17*23 = {{steps.s1.output}}"}},
            ],
            "expect": {"contains": "391"},
        },
    ),
    (
        "decomposed from text",
        {"text": "compute (2+3)*4 then echo agora is event-sourced then summarize"},
    ),
    (
        "revised after a failed evaluation",
        {
            # Iteration 1 gives the slow step 0.3 s and it times out; the rule-based revision
            # doubles the budget of failed tasks, so iteration 2 succeeds.
            "text": "wait for a slow step, then report",
            "steps": [
                {"tool": "sleep", "args": {"seconds": 0.45}, "timeout_s": 0.3},
                {"tool": "echo", "args": {"text": "the slow step finished"}},
            ],
            "expect": {"contains": "finished"},
        },
    ),
]


@dataclass(frozen=True, slots=True)
class DemoGoal:
    title: str
    text: str
    goal_id: str
    elapsed_ms: float
    outcome: Event
    trajectory: QueryReply


@dataclass(frozen=True, slots=True)
class DemoReport:
    goals: list[DemoGoal]
    tool_stats: QueryReply

    @property
    def all_completed(self) -> bool:
        return all(isinstance(goal.outcome, GoalCompleted) for goal in self.goals)


TRAJECTORY_SQL = (
    "SELECT step, actor, type, summary, round(duration_ms, 1) AS ms "
    "FROM trajectory WHERE goal_id = '{goal_id}' ORDER BY step"
)
TOOL_STATS_SQL = (
    "SELECT tool, calls, failures, round(p50_ms, 2) AS p50_ms, round(p95_ms, 2) AS p95_ms "
    "FROM tool_stats ORDER BY calls DESC"
)


async def run_demo(settings: Settings) -> DemoReport:
    """Runs the sample goals on a throw-away data dir and reads back what the projector saw."""
    with tempfile.TemporaryDirectory(prefix="agora-demo-") as tmp:
        demo_settings = replace(
            settings,
            nats_urls=None,
            nats_port=0,  # any free port: the demo never collides with a running `agora up`
            data_dir=Path(tmp),
            workspace=Path(tmp) / "workspace",
        )
        supervisor = Supervisor(demo_settings)
        await supervisor.start()
        try:
            nc = await connect(replace(demo_settings, nats_urls=(supervisor.url,)), "agora-demo")
            try:
                return await _run_samples(nc)
            finally:
                await nc.close()
        finally:
            await supervisor.stop()


async def _run_samples(nc: NatsClient) -> DemoReport:
    client = AgoraClient(nc)
    finished: list[tuple[str, dict[str, Any], str, float, Event]] = []
    for title, command in SAMPLE_GOALS:
        started = time.perf_counter()
        submitted = await client.submit(command)
        events = await client.wait_for_outcome(submitted.goal_id, timeout_s=60)
        elapsed_ms = (time.perf_counter() - started) * 1000
        finished.append((title, command, submitted.goal_id, elapsed_ms, events[-1]))
    await projector_caught_up(nc)
    goals = [
        DemoGoal(
            title=title,
            text=str(command["text"]),
            goal_id=goal_id,
            elapsed_ms=elapsed_ms,
            outcome=outcome,
            trajectory=await ask(nc, TRAJECTORY_SQL.format(goal_id=goal_id)),
        )
        for title, command, goal_id, elapsed_ms, outcome in finished
    ]
    return DemoReport(goals=goals, tool_stats=await ask(nc, TOOL_STATS_SQL))
