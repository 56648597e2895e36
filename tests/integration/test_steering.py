"""Cancel, pause and resume a goal through the intake, on a real JetStream, with every service.

Given a goal that runs -> when a steering command is published -> then the planner's answer
in the log, what the executor did about the running step, and what the views show.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import (
    ApprovalDenied,
    ApprovalRejected,
    ApprovalRequested,
    CommandRejected,
    GoalCancelled,
    GoalCompleted,
    GoalPaused,
    GoalResumed,
    TaskCancelled,
    TaskCompleted,
    TaskScheduled,
    ToolCalled,
)
from events.model import Event
from infra.clients.goals import AgoraClient
from infra.dashboard.queries import waiting_approvals_statement
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import all_events, duplicates, types_of, wait_until


async def _log(nc: NatsClient, goal_id: str) -> list[Event]:
    return await all_events(nc, f"agora.events.{goal_id}.>")


def _has(events: list[Event], kind: type[Event], **fields: Any) -> bool:
    return any(
        isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items()) for e in events
    )


async def _until_logged(
    nc: NatsClient, goal_id: str, kind: type[Event], timeout_s: float = 20.0, **fields: Any
) -> list[Event]:
    found: list[Event] = []

    async def logged() -> bool:
        found[:] = await _log(nc, goal_id)
        return _has(found, kind, **fields)

    await wait_until(logged, timeout_s=timeout_s, what=f"{kind.__name__} {fields} of {goal_id}")
    return found


@pytest.fixture
async def one_slot_platform(settings: Settings) -> AsyncIterator[InProcessPlatform]:
    """Every service, the executor running one task at a time: a stuck step would block it."""
    running = InProcessPlatform(replace(settings, executor_concurrency=1))
    running.start()
    yield running
    await running.stop()


async def test_cancel_during_a_30s_sleep_ends_the_goal_within_a_second_and_stops_the_step(
    nc: NatsClient, client: AgoraClient, one_slot_platform: InProcessPlatform
) -> None:
    submitted = await client.submit(
        {
            "goal_id": "g-cancel-sleep",
            "text": "sleep, then say done",
            "steps": [
                {"tool": "sleep", "args": {"seconds": 30}},
                {"tool": "echo", "args": {"text": "done"}},
            ],
        }
    )
    goal_id = submitted.goal_id
    await _until_logged(nc, goal_id, ToolCalled, task_id="s1")

    began = time.monotonic()
    sent = await client.cancel(goal_id, reason="changed my mind")
    answer = await client.answer(sent, timeout_s=5)
    answered_s = time.monotonic() - began

    assert isinstance(answer, GoalCancelled)
    assert (answer.command_id, answer.reason) == (sent.command_id, "changed my mind")
    assert answered_s < 1.0, f"goal_cancelled took {answered_s:.2f}s"
    # The step stops: the sleep is interrupted, far short of its 30 s.
    log = await _until_logged(nc, goal_id, TaskCancelled, timeout_s=5, task_id="s1")
    stopped = next(e for e in log if isinstance(e, TaskCancelled))
    assert stopped.attempts == 1
    assert stopped.duration_ms < 5_000
    assert time.monotonic() - began < 5.0

    # The executor is free: with one slot, another goal's step runs now, not in 30 s.
    other = await client.submit(
        {
            "goal_id": "g-after-cancel",
            "text": "x",
            "steps": [{"tool": "echo", "args": {"text": "y"}}],
        }
    )
    outcome = await client.wait(other.goal_id, timeout_s=10)
    assert isinstance(outcome.final, GoalCompleted)

    # Nothing new was scheduled, and the goal stays cancelled in the views.
    log = await _log(nc, goal_id)
    assert not _has(log, TaskScheduled, task_id="s2")
    assert not duplicates(log)
    assert types_of(log).count("goal_cancelled") == 1
    last_seq = await _last_seq(nc, goal_id)
    reply = await client.query(
        f"SELECT status, reason FROM goals WHERE goal_id = '{goal_id}'", min_seq=last_seq
    )
    assert reply.rows == [["cancelled", "changed my mind"]]
    tasks = await client.query(
        f"SELECT task_id, status FROM tasks WHERE goal_id = '{goal_id}'", min_seq=last_seq
    )
    assert tasks.rows == [["s1", "cancelled"]]


async def _last_seq(nc: NatsClient, goal_id: str) -> int:
    from infra.bus.history import read_events

    return max([seq async for seq, _ in read_events(nc, f"agora.events.{goal_id}.>")])


async def test_a_paused_goal_schedules_nothing_and_completes_once_after_resume(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    submitted = await client.submit(
        {
            "goal_id": "g-pause",
            "text": "three steps",
            "steps": [
                {"tool": "sleep", "args": {"seconds": 1}},
                {"tool": "echo", "args": {"text": "two"}},
                {"tool": "echo", "args": {"text": "three"}},
            ],
            "expect": {"contains": "three"},
        }
    )
    goal_id = submitted.goal_id
    await _until_logged(nc, goal_id, ToolCalled, task_id="s1")
    paused = await client.answer(await client.pause(goal_id, reason="hold on"), timeout_s=5)
    assert isinstance(paused, GoalPaused)

    # The running step finishes; the next one is not scheduled.
    await _until_logged(nc, goal_id, TaskCompleted, task_id="s1")
    # A barrier: the planner answers a goal's events in stream order, so once it answered a
    # command sent after s1's completion, it has decided on that completion.
    again = await client.answer(await client.pause(goal_id), timeout_s=5)
    assert isinstance(again, CommandRejected)
    assert "already paused" in again.reason
    log = await _log(nc, goal_id)
    assert not _has(log, TaskScheduled, task_id="s2")
    status = await client.query(
        f"SELECT status FROM goals WHERE goal_id = '{goal_id}'", min_seq=await _seq_of(nc, again)
    )
    assert status.rows == [["paused"]]

    resumed = await client.answer(await client.resume(goal_id), timeout_s=5)
    assert isinstance(resumed, GoalResumed)
    outcome = await client.wait(goal_id, timeout_s=20)
    assert isinstance(outcome.final, GoalCompleted)
    assert outcome.final.result == "three"

    log = await _log(nc, goal_id)
    assert not duplicates(log)
    assert types_of(log).count("goal_completed") == 1
    completed = [e.task_id for e in log if isinstance(e, TaskCompleted)]
    assert sorted(completed) == ["s1", "s2", "s3"]
    status = await client.query(
        f"SELECT status FROM goals WHERE goal_id = '{goal_id}'", min_seq=outcome.last_seq
    )
    assert status.rows == [["completed"]]


async def _seq_of(nc: NatsClient, event: Event) -> int:
    from infra.bus.history import read_events

    async for seq, stored in read_events(nc, f"agora.events.{event.goal_id}.>"):
        if stored.event_id == event.event_id:
            return seq
    raise AssertionError(f"{event.event_id} is not in the log")


async def test_a_cancel_closes_the_approval_a_task_waits_for_and_a_later_answer_is_rejected(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    submitted = await client.submit(
        {
            "goal_id": "g-cancel-approval",
            "text": "say hi after an approval",
            "approval": {"require": ["echo"]},
            "steps": [{"tool": "echo", "args": {"text": "hi"}}],
        }
    )
    goal_id = submitted.goal_id
    await _until_logged(nc, goal_id, ApprovalRequested, task_id="s1")

    answer = await client.answer(await client.cancel(goal_id, reason="not needed"), timeout_s=5)
    assert isinstance(answer, GoalCancelled)
    log = await _until_logged(nc, goal_id, TaskCancelled, timeout_s=10, task_id="s1")
    (denied,) = [e for e in log if isinstance(e, ApprovalDenied)]
    assert (denied.by, denied.reason) == ("_cancel", "the goal was cancelled: not needed")

    # The views: the task is cancelled, the approval denied, and nothing is listed as waiting.
    last_seq = await _last_seq(nc, goal_id)
    tasks = await client.query(
        f"SELECT task_id, status, error FROM tasks WHERE goal_id = '{goal_id}'", min_seq=last_seq
    )
    assert tasks.rows == [["s1", "cancelled", "the goal was cancelled: not needed"]]
    approvals = await client.query(
        f"SELECT status, answered_by FROM approvals WHERE goal_id = '{goal_id}'", min_seq=last_seq
    )
    assert approvals.rows == [["denied", "_cancel"]]
    waiting = waiting_approvals_statement(goal_id=goal_id)
    assert (await client.query(waiting.sql, params=waiting.params, min_seq=last_seq)).rows == []

    # An answer that comes after the cancel is rejected, saying why; nothing runs.
    late = await client.answer(
        await client.answer_approval(f"{goal_id}/1/s1", "approve"), timeout_s=5
    )
    assert isinstance(late, ApprovalRejected)
    assert late.reason == f"goal {goal_id} already cancelled; the approval no longer applies"
    log = await _log(nc, goal_id)
    assert not _has(log, TaskScheduled)
    assert not _has(log, ToolCalled)
    assert not duplicates(log)


async def test_a_cancel_sent_while_the_planner_is_down_is_answered_when_it_is_back(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    submitted = await client.submit(
        {
            "goal_id": "g-cancel-restart",
            "text": "a long sleep",
            "steps": [{"tool": "sleep", "args": {"seconds": 30}}],
        }
    )
    goal_id = submitted.goal_id
    await _until_logged(nc, goal_id, ToolCalled, task_id="s1")
    await platform.stop("planner")

    sent = await client.cancel(goal_id)
    log = await _log(nc, goal_id)
    assert not _has(log, GoalCancelled)  # nobody decided it: the command waits in the intake

    platform.start("planner")
    answer = await client.answer(sent, timeout_s=30)
    assert isinstance(answer, GoalCancelled)
    log = await _until_logged(nc, goal_id, TaskCancelled, timeout_s=10, task_id="s1")
    assert types_of(log).count("cancel_requested") == 1
    assert not duplicates(log)


async def test_commands_that_cannot_apply_get_a_rejection_and_change_nothing(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    unknown = await client.answer(await client.cancel("g-never-submitted"), timeout_s=10)
    assert isinstance(unknown, CommandRejected)
    assert (unknown.goal_id, unknown.target_goal_id) == ("_intake", "g-never-submitted")
    assert "no goal g-never-submitted exists" in unknown.reason
    assert await _log(nc, "g-never-submitted") == []  # the id stays free for a goal

    done = await client.submit(
        {"goal_id": "g-done", "text": "x", "steps": [{"tool": "echo", "args": {"text": "y"}}]}
    )
    finished = await client.wait(done.goal_id, timeout_s=20)
    for send in (client.cancel, client.pause, client.resume):
        answer = await client.answer(await send(done.goal_id), timeout_s=10)
        assert isinstance(answer, CommandRejected), answer
        assert answer.goal_id == "g-done"
    assert "already completed" in answer.reason or "not paused" in answer.reason
    log = await _log(nc, done.goal_id)
    after = log[[e.event_id for e in log].index(finished.final.event_id) + 1 :]
    assert {type(e).__name__ for e in after} <= {
        "CancelRequested",
        "PauseRequested",
        "ResumeRequested",
        "CommandRejected",
    }

    # Sending the same command again (same command_id) answers nothing twice.
    sent = await client.cancel(done.goal_id, command_id="c-same")
    first = await client.answer(sent, timeout_s=10)
    resent = await client.cancel(done.goal_id, command_id="c-same")
    assert resent.duplicate
    assert await client.answer(resent, timeout_s=10) == first
    log = await _log(nc, done.goal_id)
    assert [e for e in log if isinstance(e, CommandRejected) and e.command_id == "c-same"] == [
        first
    ]

    # A command that names no goal, or is not JSON.
    await nc.jetstream().publish(
        "agora.intake.pause", b'{"command_id": "c-bad"}', headers={"Nats-Msg-Id": "c-bad"}
    )
    rejected = await _until_logged(nc, "_intake", CommandRejected, command_id="c-bad")
    bad = next(e for e in rejected if isinstance(e, CommandRejected) and e.command_id == "c-bad")
    assert bad.command == "pause"
    assert "goal_id" in bad.reason


async def test_a_task_redelivered_after_its_goal_was_cancelled_is_stopped_from_the_record(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    submitted = await client.submit(
        {
            "goal_id": "g-cancel-executor-down",
            "text": "a long sleep",
            "steps": [{"tool": "sleep", "args": {"seconds": 30}}],
        }
    )
    goal_id = submitted.goal_id
    await _until_logged(nc, goal_id, ToolCalled, task_id="s1")
    # The executor stops with the sleep running: it hands the task back (nak) unfinished.
    await platform.stop("executor")
    answer = await client.answer(await client.cancel(goal_id), timeout_s=10)
    assert isinstance(answer, GoalCancelled)
    assert not _has(await _log(nc, goal_id), TaskCancelled)  # no executor heard it

    platform.start("executor")
    # The redelivered task reads the cancellation in the goal's record: it does not sleep
    # again, and records the stop.
    log = await _until_logged(nc, goal_id, TaskCancelled, timeout_s=15, task_id="s1")
    assert types_of(log).count("tool_called") == 1
    assert not duplicates(log)
