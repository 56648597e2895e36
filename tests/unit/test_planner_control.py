"""Steering a goal: given a goal's events -> when cancel / pause / resume arrives -> then the
planner's answer, and what it decides (or does not) afterwards.

Commands go through the planner's own handlers: ``CommandIntake`` records the request on the
goal, ``GoalPlanner`` answers it, as the live service does (tests/unit/planner_harness.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest

from events.catalog import (
    CancelRequested,
    CommandRejected,
    GoalCancelled,
    GoalCompleted,
    GoalPaused,
    GoalResumed,
    PauseRequested,
    TaskScheduled,
)
from events.control_commands import InvalidControl, ParsedControl, parse_control_command
from events.errors import DecodeError
from events.model import Event
from events.subjects import COMMANDS_GOAL_ID, INTAKE_CANCEL, INTAKE_PAUSE, INTAKE_RESUME
from services.planner.control import decide_control, record_command
from services.planner.handler import CommandIntake
from services.planner.state import evolve, is_finished
from tests.unit.planner_harness import NOW, PRODUCER, run_now
from tests.unit.test_planner_loop import GOAL, PlannerHarness

SUBJECTS = {"cancel": INTAKE_CANCEL, "pause": INTAKE_PAUSE, "resume": INTAKE_RESUME}
THREE_STEPS = {
    "text": "three steps",
    "steps": [
        {"tool": "echo", "args": {"text": "one"}},
        {"tool": "echo", "args": {"text": "two"}},
        {"tool": "echo", "args": {"text": "three"}},
    ],
}


class Steered(PlannerHarness):
    """A goal's planner plus the intake of steering commands, over the same log."""

    def __init__(self, command: dict[str, Any]) -> None:
        super().__init__(command)

        async def goal_exists(goal_id: str) -> bool:
            return any(event.goal_id == goal_id for event in self.log)

        self.commands = CommandIntake(
            append=self.store.append, goal_exists=goal_exists, producer=PRODUCER, now=lambda: NOW
        )

    def send(self, action: str, command_id: str, goal_id: str = GOAL, **fields: Any) -> list[Event]:
        """The command published, recorded by the intake, then delivered to the planner:
        every event this appended (the request, then the answer)."""
        body = msgspec.json.encode({"command_id": command_id, "goal_id": goal_id, **fields})
        before = len(self.log)
        recorded = run_now(self.commands.admit(SUBJECTS[action], body, fallback_command_id="x"))
        for event in recorded:
            if event.goal_id == goal_id:
                run_now(self.planner.handle(event, first_delivery=True))
        return self.log[before:]


def answer(events: list[Event]) -> Event:
    (last,) = [e for e in events if not type(e).__name__.endswith("Requested")]
    return last


def scheduled_ids(events: list[Event]) -> list[str]:
    return [event.task_id for event in events if isinstance(event, TaskScheduled)]


# -- cancel ------------------------------------------------------------------------------


def test_cancelling_a_running_goal_ends_it_and_nothing_more_is_scheduled() -> None:
    goal = Steered(THREE_STEPS)
    goal.accept()

    appended = goal.send("cancel", "c-9", reason="wrong input")

    assert [type(e) for e in appended] == [CancelRequested, GoalCancelled]
    cancelled = appended[1]
    assert isinstance(cancelled, GoalCancelled)
    assert (cancelled.command_id, cancelled.reason, cancelled.iterations) == (
        "c-9",
        "wrong input",
        1,
    )
    assert cancelled.causation_id == appended[0].event_id
    assert goal.goal.outcome == "cancelled"
    assert is_finished(goal.state)
    # The running step's result comes in after the cancel: it revives nothing.
    assert goal.completed("s1", "one") == []
    assert goal.goal.outcome == "cancelled"


def test_a_task_completing_after_the_cancel_changes_no_state_and_decides_nothing() -> None:
    goal = Steered(THREE_STEPS)
    goal.accept()
    goal.send("cancel", "c-9")
    state = goal.state
    assert state is not None

    late = goal.completed("s1", "one")

    assert late == []
    assert goal.state == state
    assert goal.decide_on(goal.log[-1]) == []


def test_a_cancel_for_a_finished_goal_is_rejected_with_the_reason() -> None:
    goal = Steered({"text": "one step", "steps": [{"tool": "echo", "args": {"text": "x"}}]})
    goal.accept()
    goal.completed("s1", "x")
    goal.evaluated("accept")
    assert isinstance(goal.log[-1], GoalCompleted)

    rejected = answer(goal.send("cancel", "c-late"))

    assert isinstance(rejected, CommandRejected)
    assert (rejected.command, rejected.target_goal_id, rejected.goal_id) == ("cancel", GOAL, GOAL)
    assert rejected.reason == f"goal {GOAL} already completed; there is nothing to cancel"
    assert goal.goal.outcome == "completed"


def test_a_second_cancel_is_rejected_and_the_same_command_again_is_answered_once() -> None:
    goal = Steered(THREE_STEPS)
    goal.accept()
    goal.send("cancel", "c-1")

    second = answer(goal.send("cancel", "c-2"))
    assert isinstance(second, CommandRejected)
    assert "already cancelled" in second.reason

    # c-1 again, after the duplicate window: the request is recorded, nothing is answered.
    request = next(e for e in goal.log if isinstance(e, CancelRequested))
    goal.store.events.append(request)
    goal.planner.states.clear()
    run_now(goal.planner.handle(request, first_delivery=False))
    assert [type(e).__name__ for e in goal.log].count("GoalCancelled") == 1
    assert [type(e).__name__ for e in goal.log].count("CommandRejected") == 1


def test_a_command_for_a_goal_that_does_not_exist_is_rejected_at_intake() -> None:
    goal = Steered(THREE_STEPS)

    (rejected,) = goal.send("cancel", "c-x", goal_id="g-nobody")

    assert isinstance(rejected, CommandRejected)
    # Not on the goal's own subject: that would keep the goal id from ever being submitted.
    assert (rejected.goal_id, rejected.target_goal_id) == (COMMANDS_GOAL_ID, "g-nobody")
    assert "no goal g-nobody exists" in rejected.reason


def test_an_invalid_command_is_rejected_on_its_goal_with_what_to_fix() -> None:
    goal = Steered(THREE_STEPS)

    (rejected,) = goal.send("pause", "c-typo", reasn="typo")

    assert isinstance(rejected, CommandRejected)
    assert (rejected.goal_id, rejected.command) == (GOAL, "pause")
    assert "reasn" in rejected.reason
    assert goal.goal.paused is False


# -- pause and resume --------------------------------------------------------------------


def test_a_paused_goal_folds_results_but_schedules_nothing_until_it_is_resumed() -> None:
    goal = Steered(THREE_STEPS)
    assert scheduled_ids(goal.accept()) == ["s1"]

    paused = answer(goal.send("pause", "c-p", reason="hold"))
    assert isinstance(paused, GoalPaused)
    assert goal.goal.paused

    assert goal.completed("s1", "one") == []  # s2 is due, but the goal is paused
    assert goal.goal.progress["s1"].status == "completed"

    appended = goal.send("resume", "c-r")
    assert [type(e) for e in appended[1:2]] == [GoalResumed]
    assert scheduled_ids(appended) == ["s2"]  # where it stopped, in the same round trip
    assert not goal.goal.paused

    goal.completed("s2", "two")
    goal.completed("s3", "three")
    goal.evaluated("accept")
    assert [type(e).__name__ for e in goal.log].count("GoalCompleted") == 1
    assert [type(e).__name__ for e in goal.log].count("TaskScheduled") == 3


def test_a_paused_goal_holds_its_verdict_until_resumed() -> None:
    goal = Steered({"text": "one step", "steps": [{"tool": "echo", "args": {"text": "x"}}]})
    goal.accept()
    goal.completed("s1", "x")
    goal.send("pause", "c-p")

    assert goal.evaluated("accept") == []
    appended = goal.send("resume", "c-r")
    assert isinstance(appended[-1], GoalCompleted)


def test_pausing_a_paused_goal_or_resuming_a_running_one_is_rejected() -> None:
    goal = Steered(THREE_STEPS)
    goal.accept()

    not_paused = answer(goal.send("resume", "c-r0"))
    assert isinstance(not_paused, CommandRejected)
    assert not_paused.reason == f"goal {GOAL} is not paused; there is nothing to resume"

    goal.send("pause", "c-p1")
    again = answer(goal.send("pause", "c-p2"))
    assert isinstance(again, CommandRejected)
    assert "already paused" in again.reason
    assert goal.goal.paused


def test_a_paused_goal_can_be_cancelled() -> None:
    goal = Steered(THREE_STEPS)
    goal.accept()
    goal.send("pause", "c-p")

    assert isinstance(answer(goal.send("cancel", "c-c")), GoalCancelled)
    assert goal.goal.outcome == "cancelled"


def test_answers_have_ids_from_the_command_so_a_redecided_request_is_the_same_event() -> None:
    goal = Steered(THREE_STEPS)
    goal.accept()
    request = goal.send("pause", "c-p")[0]
    assert isinstance(request, PauseRequested)
    before = goal.log[: goal.log.index(request)]
    state = None
    for event in before:
        state = evolve(state, event)

    first = decide_control(state, request, now=NOW, producer=PRODUCER)
    later = decide_control(state, request, now=NOW + timedelta(hours=1), producer=PRODUCER)

    assert [e.event_id for e in first] == [e.event_id for e in later]
    assert [e.event_id for e in first] == [goal.log[-1].event_id]


# -- the intake's parsing and recording, pure -------------------------------------------


def test_a_valid_command_is_parsed_with_its_ids_and_reason() -> None:
    body = b'{"command_id": "c-1", "goal_id": "g-1", "reason": "why"}'
    parsed = parse_control_command(INTAKE_CANCEL, body, fallback_command_id="x")
    assert parsed == ParsedControl("cancel", "c-1", "g-1", "why")
    # No command_id: the Nats-Msg-Id (or the stream position) the adapter passes in.
    parsed = parse_control_command(INTAKE_RESUME, b'{"goal_id": "g-1"}', fallback_command_id="m")
    assert parsed == ParsedControl("resume", "m", "g-1", "")


@pytest.mark.parametrize(
    ("body", "goal_id", "says"),
    [
        (b"{}", "", "goal_id"),
        (b'{"goal_id": "g.1"}', "", "goal_id"),
        (b'{"goal_id": "g-1\\n"}', "", "goal_id"),
        (b'{"goal_id": "_planner"}', "", "reserved"),
        (b'{"goal_id": "g-1", "extra": 1}', "g-1", "extra"),
        (b'{"goal_id": "g-1", "reason": 5}', "g-1", "reason"),
    ],
)
def test_an_invalid_command_names_what_is_wrong(body: bytes, goal_id: str, says: str) -> None:
    parsed = parse_control_command(INTAKE_PAUSE, body, fallback_command_id="x")
    assert isinstance(parsed, InvalidControl)
    assert (parsed.action, parsed.goal_id) == ("pause", goal_id)
    assert says in parsed.reason


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_bytes_that_are_not_a_json_object_cannot_be_rejected_on_a_goal(body: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_control_command(INTAKE_CANCEL, body, fallback_command_id="x")


def test_recording_a_command_for_an_existing_goal_is_its_request_keyed_by_command() -> None:
    command = ParsedControl("pause", "c-1", "g-1", "why")
    (first,) = record_command(command, goal_exists=True, now=NOW, producer=PRODUCER)
    (again,) = record_command(
        command, goal_exists=True, now=NOW + timedelta(seconds=5), producer=PRODUCER
    )
    assert isinstance(first, PauseRequested)
    assert (first.goal_id, first.command_id, first.reason) == ("g-1", "c-1", "why")
    assert first.event_id == again.event_id  # a resend is the same event: deduplicated
