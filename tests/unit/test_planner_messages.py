"""Input while a goal runs: given a goal's events and its on_message policy -> when a message
arrives -> then the planner's answer and the revision that takes the message in.

Messages go through the planner's own handlers: ``MessageIntake`` records the message on the
goal, ``GoalPlanner`` answers it, as the live service does (tests/unit/planner_harness.py).
"""

from __future__ import annotations

from typing import Any

import msgspec

from events.catalog import (
    ApprovalDenied,
    GoalCompleted,
    IterationInterrupted,
    MessageQueued,
    MessageReceived,
    MessageRejected,
    PlanRevised,
    TaskCancelled,
    TaskScheduled,
)
from events.message_commands import InvalidMessage, parse_message_command
from events.model import Event
from services.planner.handler import MessageIntake
from tests.unit.planner_harness import NOW, PRODUCER, run_now
from tests.unit.test_planner_control import Steered

TWO_STEPS = {
    "steps": [
        {"tool": "echo", "args": {"text": "one"}},
        {"tool": "echo", "args": {"text": "two"}},
    ],
}


class Messaged(Steered):
    """A goal's planner plus the intake of messages, over the same log."""

    def __init__(self, policy: str, **command: Any) -> None:
        super().__init__({"text": "two steps", **TWO_STEPS, "on_message": policy, **command})

        async def goal_exists(goal_id: str) -> bool:
            return any(event.goal_id == goal_id for event in self.log)

        self.messages = MessageIntake(
            append=self.store.append,
            goal_exists=goal_exists,
            producer=PRODUCER,
            now=lambda: NOW,
            max_bytes=10_000,
        )

    def message(self, text: str, command_id: str) -> list[Event]:
        body = msgspec.json.encode(
            {"command_id": command_id, "goal_id": self.goal.goal_id, "text": text}
        )
        before = len(self.log)
        for event in run_now(self.messages.admit(body, fallback_command_id="x")):
            run_now(self.planner.handle(event, first_delivery=True))
        return [e for e in self.log[before:] if not isinstance(e, MessageReceived)]


def test_reject_is_the_default_and_says_how_to_send_input() -> None:
    goal = Messaged("reject")
    goal.accept()
    [rejected] = goal.message("echo hi", "m-1")
    assert isinstance(rejected, MessageRejected)
    assert 'on_message "reject"' in rejected.reason


def test_enqueue_waits_for_the_verdict_then_revises_with_the_message_once() -> None:
    goal = Messaged("enqueue")
    goal.accept()
    [queued] = goal.message("echo hi", "m-1")
    assert isinstance(queued, MessageQueued)
    assert goal.message("echo hi", "m-1") == []  # sent again: answered once
    assert [type(e) for e in goal.completed("s1", "one")] == [TaskScheduled]  # the plan goes on
    goal.completed("s2", "two")
    revised, first = goal.evaluated("accept")  # accepted, but the message is to be taken in
    assert isinstance(revised, PlanRevised)
    assert isinstance(first, TaskScheduled)
    assert (revised.iteration, revised.strategy, revised.messages) == (2, "message", ("m-1",))
    assert [t.args for t in revised.tasks] == [{"text": "hi"}]
    assert goal.goal.queued == ()


def test_interrupt_ends_the_iteration_denies_its_waiting_approval_and_revises_at_once() -> None:
    goal = Messaged("interrupt", approval={"require": ["echo"]})
    goal.accept()  # s1 waits for approval
    appended = goal.message("echo instead", "m-1")
    interrupted, denied, cancelled, revised = appended[:4]
    assert isinstance(interrupted, IterationInterrupted)
    assert interrupted.tasks == ("s1", "s2")
    assert isinstance(denied, ApprovalDenied)
    assert denied.by == "_interrupt"
    # No process holds a task that waits for approval: the planner cancels it itself.
    assert isinstance(cancelled, TaskCancelled)
    assert (cancelled.iteration, cancelled.task_id, cancelled.reason) == (
        1,
        "s1",
        "iteration 1 was interrupted by a message",
    )
    assert isinstance(revised, PlanRevised)
    assert revised.messages == ("m-1",)
    assert goal.goal.iteration == 2
    # A result of the interrupted iteration that arrives late decides nothing.
    assert goal.completed("s1", "one", iteration=1) == []


def test_a_paused_goal_is_interrupted_but_revised_only_on_resume() -> None:
    goal = Messaged("interrupt")
    goal.accept()
    goal.send("pause", "c-p")
    [interrupted] = goal.message("echo later", "m-1")
    assert isinstance(interrupted, IterationInterrupted)
    resumed = goal.send("resume", "c-r")
    assert any(isinstance(e, PlanRevised) and e.messages == ("m-1",) for e in resumed)


def test_no_message_is_taken_in_the_last_iteration_nor_after_the_end() -> None:
    goal = Messaged("enqueue", max_iterations=1)
    goal.accept()
    [last] = goal.message("echo hi", "m-1")
    assert isinstance(last, MessageRejected)
    assert "last iteration" in last.reason
    goal.completed("s1", "one")
    goal.completed("s2", "two")
    assert isinstance(goal.evaluated("accept")[-1], GoalCompleted)
    [late] = goal.message("echo hi", "m-2")
    assert isinstance(late, MessageRejected)
    assert "already completed" in late.reason


def test_an_invalid_message_names_what_to_fix() -> None:
    parsed = parse_message_command(
        b'{"goal_id": "g-1", "text": "  ", "extra": 1}', fallback_command_id="x", max_bytes=100
    )
    assert isinstance(parsed, InvalidMessage)
    assert parsed.goal_id == "g-1"
    too_big = parse_message_command(
        b'{"goal_id": "g-1", "text": "' + b"x" * 200 + b'"}', fallback_command_id="x", max_bytes=100
    )
    assert isinstance(too_big, InvalidMessage)
    assert "limit is 100 bytes" in too_big.reason
