"""Goals flow end to end through planner, executor, memory and evaluator on a real JetStream."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted, TaskCompleted, ToolCalled
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

    # Explicit steps: no context round trip; calculator (instant, no side effects) writes
    # no tool_called: its task_completed records the call.
    assert [t for t in types_of(events) if t != "memory_stored"] == [
        "goal_accepted",
        "plan_created",
        "task_scheduled",
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


async def test_a_pure_instant_call_is_recorded_by_its_outcome_and_one_with_effects_first(
    client: AgoraClient, platform: InProcessPlatform
) -> None:
    submitted = await client.submit(
        {
            "text": "echo, then write it down",
            "steps": [
                {"tool": "echo", "args": {"text": "hi"}},
                {
                    "tool": "write_file",
                    "args": {"path": "hi.txt", "content": "{{steps.s1.output}}"},
                },
            ],
        }
    )
    outcome = await client.wait(submitted.goal_id, timeout_s=30)
    assert isinstance(outcome.events[-1], GoalCompleted)
    tasks = [e for e in outcome.events if getattr(e, "task_id", None)]
    assert [(type(e).__name__, e.task_id) for e in tasks] == [  # type: ignore[attr-defined]
        ("TaskScheduled", "s1"),
        ("TaskCompleted", "s1"),  # echo: no tool_called, the outcome says when it was called
        ("TaskScheduled", "s2"),
        ("ToolCalled", "s2"),  # write_file has side effects: its call is recorded first
        ("TaskCompleted", "s2"),
    ]
    echoed, called, written = tasks[1], tasks[3], tasks[4]
    assert isinstance(echoed, TaskCompleted)
    assert isinstance(written, TaskCompleted)
    assert isinstance(called, ToolCalled)
    assert echoed.called_at is not None
    assert written.called_at is None
    assert echoed.attempt_duration_ms is not None

    # Both tasks project their tool, attempt, start and duration alike.
    reply = await client.query(
        "SELECT task_id, tool, status, attempts, started_at, finished_at, duration_ms FROM tasks "
        f"WHERE goal_id = '{submitted.goal_id}' ORDER BY task_id",
        min_seq=outcome.last_seq,
    )
    assert [tuple(row) for row in reply.rows] == [
        ("s1", "echo", "completed", 1, *_at(echoed.called_at, echoed), echoed.duration_ms),
        (
            "s2",
            "write_file",
            "completed",
            1,
            *_at(called.occurred_at, written),
            written.duration_ms,
        ),
    ]
    steps = await client.query(
        "SELECT type, tool, duration_ms, summary FROM trajectory "
        f"WHERE goal_id = '{submitted.goal_id}' AND type = 'task_completed' ORDER BY step",
        min_seq=outcome.last_seq,
    )
    # The row that is echo's whole call record names its attempt, as tool_called's did.
    assert [tuple(row) for row in steps.rows] == [
        ("task_completed", "echo", echoed.duration_ms, "s1 completed: hi (attempt 1)"),
        ("task_completed", "write_file", written.duration_ms, f"s2 completed: {written.output}"),
    ]


def _at(started: datetime, ended: TaskCompleted) -> tuple[str, str]:
    """A task's start and end as a query reply renders the views' timestamps."""

    def rendered(moment: datetime) -> str:
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat()

    return rendered(started), rendered(ended.occurred_at)
