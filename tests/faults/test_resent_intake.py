"""Scenario 5: the duplicate window has expired and a client resends its intake command:
one goal, not two (the planner's first event is guarded by the goal's last sequence 0)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nats.aio.client import Client as NatsClient

from events.catalog import GoalAccepted, GoalCompleted
from events.subjects import INTAKE_STREAM
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.platform.embedded import EmbeddedNats
from tests.conftest import InProcessPlatform
from tests.faults.checker import collect
from tests.faults.conftest import report
from tests.faults.harness import fault_settings
from tests.support import all_events, wait_until

WINDOW_S = 0.5


async def planner_took_every_command(nc: NatsClient) -> bool:
    info = await nc.jetstream().consumer_info(INTAKE_STREAM, "planner")
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_a_command_resent_after_the_duplicate_window_makes_no_second_goal(
    tmp_path: Path,
) -> None:
    server = EmbeddedNats(tmp_path / "nats", durability="os").start()
    settings = fault_settings(tmp_path, server.url, duplicate_window_s=WINDOW_S)
    nc = await connect(settings, "fault-test")
    platform = InProcessPlatform(settings)
    client = AgoraClient(nc)
    command = {
        "command_id": "resent-1",
        "goal_id": "resent-goal",
        "text": "a goal whose command is sent three times",
        "steps": [
            {"tool": "sleep", "args": {"seconds": 1.5}},
            {"tool": "echo", "args": {"text": "ok"}},
        ],
    }
    try:
        await provision(nc.jetstream(), settings)
        platform.start()
        first = await client.submit(command)
        sent_at = time.monotonic()
        # Resent while the goal runs, then again after it finished, each time after the
        # window: the intake stream stores every copy (duplicate=False proves the window
        # had expired), so only the planner can keep them from becoming goals.
        await asyncio.sleep(WINDOW_S * 2)  # let the duplicate window expire: time is the point
        while_running = await client.submit(command)
        events = await client.wait_for_outcome(first.goal_id, timeout_s=30)
        assert isinstance(events[-1], GoalCompleted)
        await asyncio.sleep(max(0.0, sent_at + WINDOW_S * 2 - time.monotonic()))
        after_finish = await client.submit(command)
        await wait_until(
            lambda: planner_took_every_command(nc), timeout_s=30, what="the planner to take all"
        )
        await platform.stop()

        assert [first.duplicate, while_running.duplicate, after_finish.duplicate] == [
            False,
            False,
            False,
        ]
        log = await all_events(nc)
        assert sum(1 for e in log if isinstance(e, GoalAccepted)) == 1
        verdict = await collect("5 resend after the duplicate window", nc, [first.goal_id])
        verdict.counts["commands_stored"] = int(
            (await nc.jetstream().stream_info(INTAKE_STREAM)).state.messages
        )
        report(verdict.line())
        assert verdict.ok, verdict.explain()
        assert verdict.counts["commands_stored"] == 3
    finally:
        await platform.stop()
        await nc.close()
        server.stop()
