"""Planner intake: given a goal command -> when accept_goal -> then accepted or rejected."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from events.catalog import GoalAccepted, GoalRejected
from events.commands import ParsedGoal, RejectedGoal, parse_goal_command
from events.ids import derive_id
from events.model import Event, TaskSpec
from events.tools import BUILTIN_TOOLS
from services.planner.intake import accept_goal
from services.planner.state import PlannerState, evolve

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
PRODUCER = "planner@0.1.0"


def parse(command: dict[str, Any]) -> ParsedGoal | RejectedGoal:
    body = {"command_id": "c-1", "goal_id": "g-1", **command}
    return parse_goal_command(
        msgspec.json.encode(body), fallback_command_id="c-fallback", max_bytes=100_000
    )


def intake(command: dict[str, Any], existing: PlannerState | None = None) -> list[Event]:
    return accept_goal(parse(command), existing, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER)


def accepted_tasks(command: dict[str, Any]) -> tuple[TaskSpec, ...]:
    events = intake(command)
    accepted = events[0]
    assert isinstance(accepted, GoalAccepted), events
    assert accepted.steps is not None
    return accepted.steps


def rejection_reason(command: dict[str, Any]) -> str:
    events = intake(command)
    assert len(events) == 1
    rejected = events[0]
    assert isinstance(rejected, GoalRejected), events
    return rejected.reason


# -- accepted -----------------------------------------------------------------------------


def test_a_valid_goal_is_accepted_and_nothing_else_is_decided_at_intake() -> None:
    events = intake(
        {
            "text": "compute 17*23 then summarize",
            "expect": {"contains": "391"},
            "max_iterations": 2,
            "metadata": {"team": "ops"},
        }
    )

    (accepted,) = events
    assert isinstance(accepted, GoalAccepted)
    assert (accepted.goal_id, accepted.command_id) == ("g-1", "c-1")
    assert accepted.text == "compute 17*23 then summarize"
    assert accepted.steps is None
    assert accepted.expect is not None
    assert accepted.expect.contains == "391"
    assert accepted.max_iterations == 2
    assert accepted.metadata == {"team": "ops"}
    assert accepted.causation_id is None
    assert accepted.correlation_id == "g-1"
    assert accepted.occurred_at == NOW
    assert accepted.producer == PRODUCER
    assert accepted.event_id == derive_id("planner", "g-1", "goal_accepted", "accepted")


def test_steps_without_ids_run_one_after_another_as_s1_s2() -> None:
    tasks = accepted_tasks(
        {
            "text": "t",
            "steps": [
                {"tool": "calculator", "args": {"expression": "17*23"}},
                {"tool": "echo", "args": {"text": "got {{steps.s1.output}}"}, "timeout_s": 5},
                {"tool": "sleep", "args": {"seconds": 1}, "description": "a short nap"},
            ],
        }
    )

    assert [task.task_id for task in tasks] == ["s1", "s2", "s3"]
    assert [task.depends_on for task in tasks] == [(), ("s1",), ("s2",)]
    assert [task.description for task in tasks] == [
        "calculator 17*23",
        "echo got {{steps.s1.output}}",
        "a short nap",
    ]
    # An explicit timeout wins; otherwise the tool's default (sleep has a long one).
    assert [task.timeout_s for task in tasks] == [30.0, 5.0, 3600.0]
    assert {task.max_attempts for task in tasks} == {3}
    assert tasks[1].args == {"text": "got {{steps.s1.output}}"}  # resolved only when scheduled


def test_any_id_or_depends_on_makes_the_steps_a_dag_exactly_as_given() -> None:
    tasks = accepted_tasks(
        {
            "text": "t",
            "steps": [
                {"id": "a", "tool": "echo", "args": {"text": "A"}},
                {"tool": "echo", "args": {"text": "B"}},
                {"id": "c", "tool": "echo", "args": {"text": "C"}, "depends_on": ["a", "s2"]},
            ],
        }
    )

    assert [(task.task_id, task.depends_on) for task in tasks] == [
        ("a", ()),
        ("s2", ()),
        ("c", ("a", "s2")),
    ]


def test_an_empty_step_list_means_the_planner_decomposes_the_text() -> None:
    accepted = intake({"text": "echo hi", "steps": []})[0]

    assert isinstance(accepted, GoalAccepted)
    assert accepted.steps is None


def test_a_resent_command_for_an_existing_goal_decides_nothing() -> None:
    command = {"text": "echo hi"}
    first = intake(command)
    state: PlannerState | None = None
    for event in first:
        state = evolve(state, event)

    assert intake(command, existing=state) == []
    # And a resend that arrives before the state was known reproduces the same ids.
    assert [event.event_id for event in intake(command)] == [event.event_id for event in first]


def test_a_command_for_a_goal_that_was_rejected_decides_nothing() -> None:
    rejected = intake({"text": "t", "steps": [{"tool": "nope"}]})
    state = evolve(None, rejected[0])

    assert intake({"text": "t", "steps": [{"tool": "nope"}]}, existing=state) == []


# -- rejected -----------------------------------------------------------------------------


def test_a_command_that_failed_parsing_becomes_goal_rejected() -> None:
    parsed = parse({"text": "t", "max_iterations": 99})
    assert isinstance(parsed, RejectedGoal)

    events = accept_goal(parsed, None, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER)

    assert len(events) == 1
    rejected = events[0]
    assert isinstance(rejected, GoalRejected)
    assert rejected.command_id == "c-1"
    assert rejected.goal_id == "g-1"
    assert rejected.text == "t"
    assert "max_iterations" in rejected.reason
    assert rejected.causation_id is None
    assert rejected.correlation_id == "g-1"
    assert rejected.event_id == derive_id("planner", "g-1", "goal_rejected", "goal_rejected", "c-1")


def test_an_unknown_tool_is_rejected_naming_the_known_tools() -> None:
    reason = rejection_reason({"text": "t", "steps": [{"tool": "teleport", "args": {}}]})

    assert "unknown tool 'teleport'" in reason
    assert "step s1" in reason
    for name in BUILTIN_TOOLS:
        assert name in reason


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"tool": "calculator", "args": {"expression": ""}}, "argument expression"),
        ({"tool": "calculator", "args": {}}, "argument expression: Field required"),
        ({"tool": "echo", "args": {"text": "x", "loud": True}}, "argument loud"),
        ({"tool": "sleep", "args": {"seconds": 7200}}, "argument seconds"),
        ({"tool": "http_get", "args": {"url": "ftp://x"}}, "argument url"),
        (
            {"tool": "wait_until", "args": {"at": "2026-12-24T18:00:00"}},
            "argument at: Value error, '2026-12-24T18:00:00' has no time zone",
        ),
        (
            {"tool": "wait_until", "args": {"at": "2026-02-30T18:00:00Z"}},
            "is not a time (day is out of range for month): use RFC 3339",
        ),
        ({"tool": "wait_until", "args": {"at": "christmas"}}, "'christmas' is not a time"),
        ({"tool": "wait_until", "args": {"at": "9" * 10_000}}, "at most 64 characters"),
    ],
)
def test_arguments_invalid_for_the_tool_are_rejected(step: dict[str, Any], expected: str) -> None:
    reason = rejection_reason({"text": "t", "steps": [step]})

    assert f"step s1 ({step['tool']})" in reason
    assert expected in reason


def test_arguments_with_references_are_checked_by_name_only() -> None:
    # "{{...}}" is not a number yet, so the value is not validated, only the argument names.
    tasks = accepted_tasks(
        {
            "text": "t",
            "steps": [
                {"tool": "calculator", "args": {"expression": "2"}},
                {"tool": "sleep", "args": {"seconds": "{{steps.s1.output}}"}},
            ],
        }
    )
    assert tasks[1].args == {"seconds": "{{steps.s1.output}}"}

    unknown = rejection_reason(
        {
            "text": "t",
            "steps": [
                {"tool": "echo", "args": {"text": "x"}},
                {"tool": "echo", "args": {"txt": "{{steps.s1.output}}"}},
            ],
        }
    )
    assert "step s2 (echo): unknown argument 'txt'" in unknown
    assert "missing argument 'text'" in unknown
    assert "expected arguments: text" in unknown


def test_duplicate_step_ids_are_rejected() -> None:
    reason = rejection_reason(
        {
            "text": "t",
            "steps": [
                {"id": "a", "tool": "echo", "args": {"text": "1"}},
                {"id": "a", "tool": "echo", "args": {"text": "2"}},
            ],
        }
    )

    assert "step 2 uses id 'a', already used by step 1" in reason


def test_a_generated_id_that_collides_with_a_given_one_is_rejected() -> None:
    reason = rejection_reason(
        {
            "text": "t",
            "steps": [
                {"id": "s2", "tool": "echo", "args": {"text": "1"}},
                {"tool": "echo", "args": {"text": "2"}},
            ],
        }
    )

    assert "step 2 uses id 's2' (the name given to a step without an id)" in reason


def test_depending_on_an_unknown_step_is_rejected() -> None:
    reason = rejection_reason(
        {
            "text": "t",
            "steps": [{"id": "a", "tool": "echo", "args": {"text": "1"}, "depends_on": ["zz"]}],
        }
    )

    assert "step a depends on unknown step 'zz'; known steps: a" in reason


def test_a_dependency_cycle_is_rejected_with_its_path() -> None:
    reason = rejection_reason(
        {
            "text": "t",
            "steps": [
                {"id": "a", "tool": "echo", "args": {"text": "1"}, "depends_on": ["c"]},
                {"id": "b", "tool": "echo", "args": {"text": "2"}, "depends_on": ["a"]},
                {"id": "c", "tool": "echo", "args": {"text": "3"}, "depends_on": ["b"]},
                {"id": "d", "tool": "echo", "args": {"text": "4"}},
            ],
        }
    )

    assert "cycle (a -> c -> b -> a)" in reason


def test_a_step_depending_on_itself_is_a_cycle() -> None:
    reason = rejection_reason(
        {
            "text": "t",
            "steps": [{"id": "a", "tool": "echo", "args": {"text": "1"}, "depends_on": ["a"]}],
        }
    )

    assert "cycle (a -> a)" in reason


def test_a_reference_to_an_unknown_step_is_rejected() -> None:
    reason = rejection_reason(
        {"text": "t", "steps": [{"tool": "echo", "args": {"text": "{{steps.nope.output}}"}}]}
    )

    assert "step s1 refers to the output of unknown step 'nope'" in reason


def test_a_reference_to_a_step_that_is_not_a_dependency_is_rejected() -> None:
    reason = rejection_reason(
        {
            "text": "t",
            "steps": [
                {"id": "a", "tool": "echo", "args": {"text": "1"}},
                {"id": "b", "tool": "echo", "args": {"text": "{{steps.a.output}}"}},
            ],
        }
    )

    assert "step b refers to the output of step 'a' but does not depend on it" in reason
    assert "add 'a' to its depends_on" in reason


def test_in_ordered_steps_a_reference_to_a_later_step_is_rejected() -> None:
    reason = rejection_reason(
        {
            "text": "t",
            "steps": [
                {"tool": "echo", "args": {"text": "{{steps.s2.output}}"}},
                {"tool": "echo", "args": {"text": "2"}},
            ],
        }
    )

    assert "step s1 refers to the output of step 's2' but does not depend on it" in reason


def test_references_to_transitive_dependencies_are_allowed() -> None:
    tasks = accepted_tasks(
        {
            "text": "t",
            "steps": [
                {"tool": "echo", "args": {"text": "1"}},
                {"tool": "echo", "args": {"text": "2"}},
                {"tool": "echo", "args": {"text": "{{steps.s1.output}} {{ steps.s2.output }}"}},
            ],
        }
    )

    assert len(tasks) == 3


def test_every_problem_is_reported_at_once() -> None:
    reason = rejection_reason(
        {
            "text": "t",
            "steps": [
                {"tool": "teleport"},
                {"tool": "calculator", "args": {"expression": ""}},
            ],
        }
    )

    assert reason.startswith("invalid steps: ")
    assert "unknown tool 'teleport'" in reason
    assert "step s2 (calculator)" in reason
