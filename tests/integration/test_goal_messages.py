"""Input while a goal runs (``agora.intake.message``), on a real JetStream, with every service.

Given a goal submitted with an ``on_message`` policy -> when a message is published while it
runs -> then the planner's answer in the log, what the executor did about the running step,
the revision that took the message in, and the ``messages`` view.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NatsClient

from events.catalog import (
    ApprovalRequested,
    GoalCompleted,
    IterationInterrupted,
    MessageQueued,
    MessageRejected,
    PlanRevised,
    TaskCancelled,
    TaskCompleted,
    ToolCalled,
)
from events.model import Event
from events.subjects import COMMANDS_GOAL_ID
from infra.clients.goals import AgoraClient
from tests.conftest import InProcessPlatform
from tests.support import all_events, wait_until


async def _until_logged(
    nc: NatsClient, goal_id: str, kind: type[Event], **fields: Any
) -> list[Event]:
    found: list[Event] = []

    async def logged() -> bool:
        found[:] = await all_events(nc, f"agora.events.{goal_id}.>")
        return any(
            isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())
            for e in found
        )

    await wait_until(logged, timeout_s=20, what=f"{kind.__name__} {fields} of {goal_id}")
    return found


async def _message_row(client: AgoraClient, goal_id: str) -> list[Any]:
    rows: list[Any] = []

    async def applied() -> bool:
        reply = await client.query(
            "SELECT command_id, status, iteration, applied_iteration FROM messages "
            f"WHERE goal_id = '{goal_id}'"
        )
        rows[:] = reply.rows
        return bool(rows) and rows[0][1] == "applied"

    await wait_until(applied, timeout_s=20, what=f"the messages row of {goal_id}")
    return rows


async def test_interrupt_stops_the_running_step_and_revises_with_the_message(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    submitted = await client.submit(
        {
            "goal_id": "g-interrupt",
            "text": "wait, then say done",
            "on_message": "interrupt",
            "steps": [
                {"tool": "sleep", "args": {"seconds": 20}},
                {"tool": "echo", "args": {"text": "done"}},
            ],
        }
    )
    goal_id = submitted.goal_id
    await _until_logged(nc, goal_id, ToolCalled, task_id="s1")

    sent = await client.message(goal_id, "echo the new plan")
    answer = await client.answer(sent, timeout_s=5)

    assert isinstance(answer, IterationInterrupted)
    assert (answer.iteration, answer.tasks, answer.text) == (1, ("s1", "s2"), "echo the new plan")
    outcome = await client.wait(goal_id, timeout_s=15)
    assert isinstance(outcome.final, GoalCompleted)
    assert (outcome.final.iterations, outcome.final.result) == (2, "the new plan")
    # The sleep was stopped (not waited out), the step after it never ran.
    log = await _until_logged(nc, goal_id, TaskCancelled, iteration=1, task_id="s1")
    stopped = next(e for e in log if isinstance(e, TaskCancelled))
    assert (stopped.iteration, stopped.task_id) == (1, "s1")
    assert stopped.reason == "iteration 1 was interrupted by a message"
    assert stopped.duration_ms < 10_000
    assert not any(isinstance(e, TaskCompleted) and e.iteration == 1 for e in log)
    revised = next(e for e in log if isinstance(e, PlanRevised))
    assert (revised.iteration, revised.strategy, revised.messages) == (
        2,
        "message",
        (sent.command_id,),
    )
    assert await _message_row(client, goal_id) == [[sent.command_id, "applied", 1, 2]]


async def test_enqueue_waits_for_the_iteration_and_reject_and_unknown_goals_refuse(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    # The first step waits for an approval, so the message surely comes while it runs.
    queued_goal = await client.submit(
        {
            "goal_id": "g-enqueue",
            "text": "compute, then take input",
            "on_message": "enqueue",
            "approval": {"require": ["calculator"]},
            "steps": [{"tool": "calculator", "args": {"expression": "6*7"}}],
        }
    )
    refusing_goal = await client.submit(
        {"goal_id": "g-refuses", "text": "x", "steps": [{"tool": "sleep", "args": {"seconds": 5}}]}
    )
    await _until_logged(nc, queued_goal.goal_id, ApprovalRequested)

    sent = await client.message(queued_goal.goal_id, "echo hello", command_id="m-once")
    queued = await client.answer(sent, timeout_s=5)
    assert isinstance(queued, MessageQueued)
    assert queued.iteration == 1
    again = await client.message(queued_goal.goal_id, "echo hello", command_id="m-once")
    assert again.duplicate

    refused = await client.answer(await client.message(refusing_goal.goal_id, "hi"), timeout_s=5)
    assert isinstance(refused, MessageRejected)
    assert 'on_message "reject"' in refused.reason
    unknown = await client.answer(await client.message("g-nobody", "hi"), timeout_s=5)
    assert isinstance(unknown, MessageRejected)
    assert (unknown.goal_id, unknown.target_goal_id) == (COMMANDS_GOAL_ID, "g-nobody")

    answered = await client.answer(
        await client.answer_approval(f"{queued_goal.goal_id}/1/s1", "approve"), timeout_s=5
    )
    assert answered.goal_id == queued_goal.goal_id
    outcome = await client.wait(queued_goal.goal_id, timeout_s=15)
    assert isinstance(outcome.final, GoalCompleted)
    assert (outcome.final.iterations, outcome.final.result) == (2, "hello")
    # Iteration 1 ran to its end before the message was taken in.
    log = outcome.events
    assert any(isinstance(e, TaskCompleted) and e.iteration == 1 for e in log)
    assert sum(isinstance(e, MessageQueued) for e in log) == 1  # sent twice, answered once
    assert await _message_row(client, queued_goal.goal_id) == [["m-once", "applied", 1, 2]]

    late = await client.answer(await client.message(queued_goal.goal_id, "more"), timeout_s=5)
    assert isinstance(late, MessageRejected)
    assert "already completed" in late.reason
