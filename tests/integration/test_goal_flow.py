"""Goals flow end to end through planner, executor, memory and evaluator on a real JetStream."""

from __future__ import annotations

import json

from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted, TaskCompleted
from infra.clients.goals import AgoraClient
from tests.conftest import InProcessPlatform
from tests.support import all_events, duplicates, types_of

DOCUMENTED_COMMAND = {
    "command_id": "c-123",
    "goal_id": "g-123",
    "text": "compute 17*23 then summarize",
    "steps": [{"tool": "calculator", "args": {"expression": "17*23"}}],
    "expect": {"contains": "391"},
    "max_iterations": 3,
    "metadata": {"team": "ops"},
}


async def test_plain_nats_publish_of_documented_json_completes(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    # No agora client code: the documented JSON, a JetStream publish, the documented header.
    ack = await nc.jetstream().publish(
        "agora.intake.goal",
        json.dumps(DOCUMENTED_COMMAND).encode(),
        headers={"Nats-Msg-Id": "c-123"},
    )
    assert ack.stream == "AGORA_INTAKE"

    events = await client.wait_for_outcome("g-123", timeout_s=30)

    # Explicit steps: no context round trip; a plain task is tool_called then task_completed.
    assert [t for t in types_of(events) if t != "memory_stored"] == [
        "goal_accepted",
        "plan_created",
        "task_scheduled",
        "tool_called",
        "task_completed",
        "evaluation_requested",
        "evaluation_completed",
        "goal_completed",
    ]
    outcome = events[-1]
    assert isinstance(outcome, GoalCompleted)
    assert outcome.result == "391"
    assert outcome.score == 1.0
    log = await all_events(nc, "agora.events.g-123.>")
    assert not duplicates(log)
    assert next(e for e in log if isinstance(e, TaskCompleted)).output == "391"


async def test_a_command_whose_ack_was_lost_is_resent_without_a_second_goal(
    nc: NatsClient, platform: InProcessPlatform
) -> None:
    command = {
        "command_id": "c-lost-ack",
        "goal_id": "g-lost-ack",
        "text": "echo once",
        "steps": [{"tool": "echo", "args": {"text": "once"}}],
    }
    # The first publish reaches the stream, but its client never sees the ack.
    await nc.publish(
        "agora.intake.goal", json.dumps(command).encode(), headers={"Nats-Msg-Id": "c-lost-ack"}
    )
    await nc.flush()
    resent = await AgoraClient(nc).submit(command)
    assert resent.duplicate
    assert (resent.goal_id, resent.command_id) == ("g-lost-ack", "c-lost-ack")
    events = await AgoraClient(nc).wait_for_outcome("g-lost-ack", timeout_s=30)
    assert isinstance(events[-1], GoalCompleted)
    assert types_of(await all_events(nc, "agora.events.g-lost-ack.>")).count("goal_accepted") == 1
