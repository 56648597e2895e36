"""The fault suite's checker finds what it is meant to find: a checker that cannot fail
would make every fault scenario pass."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from events.catalog import (
    GoalAccepted,
    GoalCompleted,
    PlanCreated,
    TaskCompleted,
    TaskScheduled,
    ToolCalled,
    ToolReturned,
)
from events.model import Event
from tests.faults.checker import check_log, check_side_effects

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def envelope(event_id: str, cause: str | None, goal_id: str = "g") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "goal_id": goal_id,
        "occurred_at": NOW,
        "causation_id": cause,
        "correlation_id": goal_id,
        "producer": "test@0",
    }


def finished_goal(goal_id: str = "g") -> list[Event]:
    task = {"iteration": 1, "task_id": "s1", "tool": "echo"}
    return [
        GoalAccepted(**envelope(f"{goal_id}-a", None, goal_id), command_id="c", text="t"),
        PlanCreated(
            **envelope(f"{goal_id}-p", f"{goal_id}-a", goal_id), iteration=1, strategy="x", tasks=()
        ),
        TaskScheduled(
            **envelope(f"{goal_id}-s", f"{goal_id}-p", goal_id),
            **task,
            description="d",
            args={},
            timeout_s=1.0,
            max_attempts=3,
        ),
        ToolCalled(**envelope(f"{goal_id}-c", f"{goal_id}-s", goal_id), **task, attempt=1, args={}),
        ToolReturned(
            **envelope(f"{goal_id}-r", f"{goal_id}-s", goal_id),
            **task,
            attempt=1,
            output="o",
            duration_ms=1.0,
        ),
        TaskCompleted(
            **envelope(f"{goal_id}-t", f"{goal_id}-s", goal_id),
            **task,
            output="o",
            attempts=1,
            duration_ms=1.0,
        ),
        GoalCompleted(
            **envelope(f"{goal_id}-o", f"{goal_id}-t", goal_id), result="o", iterations=1, score=1.0
        ),
    ]


def test_a_complete_history_passes() -> None:
    log = finished_goal()
    verdict = check_log("unit", ["g"], log, len(log))
    assert verdict.ok, verdict.explain()
    assert verdict.completed == 1


def test_a_goal_without_an_outcome_is_reported_lost() -> None:
    log = finished_goal()[:-1]
    verdict = check_log("unit", ["g"], log, len(log))
    assert not verdict.ok
    assert verdict.unfinished == ["g"]


def test_an_event_stored_twice_is_reported() -> None:
    log = finished_goal()
    log.insert(4, log[3])
    verdict = check_log("unit", ["g"], log, len(log))
    assert verdict.duplicate_ids == {"g-c": 2}
    assert any("numbered [1, 1]" in p for p in verdict.problems)


def test_a_gap_in_a_history_is_reported() -> None:
    log = [e for e in finished_goal() if not isinstance(e, TaskScheduled)]
    verdict = check_log("unit", ["g"], log, len(log))
    assert any("not an earlier event" in p for p in verdict.problems)
    assert any("never scheduled" in p for p in verdict.problems)


def test_two_plans_for_one_iteration_are_reported() -> None:
    log = finished_goal()
    second = PlanCreated(**envelope("g-p2", "g-a"), iteration=1, strategy="other", tasks=())
    log.insert(2, second)
    verdict = check_log("unit", ["g"], log, len(log))
    assert any("2 plans for iteration 1" in p for p in verdict.problems)


def test_a_stream_holding_more_messages_than_events_fails() -> None:
    log = finished_goal()
    assert not check_log("unit", ["g"], log, len(log) + 1).ok


def test_a_side_effect_that_ran_more_often_than_its_attempts_is_reported() -> None:
    log = finished_goal()
    verdict = check_log("unit", ["g"], log, len(log))
    check_side_effects(verdict, log, {("g", "s1"): 2})
    assert any("ran 2x for 1 attempts" in p for p in verdict.problems)


def test_a_poisoned_goal_must_not_finish() -> None:
    log = finished_goal() + finished_goal("poison")
    verdict = check_log("unit", ["g"], log, len(log), dead_lettered=["poison"])
    assert any("finished although" in p for p in verdict.problems)


def todays_shape(goal_id: str = "g") -> list[Event]:
    """The same goal as written now: the task's completion is its call's return."""
    events = [e for e in finished_goal(goal_id) if not isinstance(e, ToolReturned)]
    return [
        msgspec.structs.replace(e, attempt_duration_ms=1.0) if isinstance(e, TaskCompleted) else e
        for e in events
    ]


def test_a_history_of_todays_shape_passes_and_a_missing_return_is_found() -> None:
    log = todays_shape()
    verdict = check_log("unit", ["g"], log, len(log))
    assert verdict.ok, verdict.explain()

    # An older task_completed (no attempt_duration_ms) is no call's return: attempt 1 has none.
    older = [e for e in finished_goal() if not isinstance(e, ToolReturned)]
    verdict = check_log("unit", ["g"], older, len(older))
    assert not verdict.ok
    assert "attempt 1 has 0 results" in verdict.explain()
