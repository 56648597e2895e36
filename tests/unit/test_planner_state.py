"""The planner's fold: given events -> when folded (once, twice, early) -> then the state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.catalog import (
    ContextProvided,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCompleted,
    GoalFailed,
    GoalRejected,
    PlanCreated,
    PlanRevised,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from events.model import Event, Stamp, TaskSpec
from services.planner.state import (
    PlannerState,
    evolve,
    is_finished,
    iteration_outcomes,
    iteration_result,
    ready_tasks,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
STAMP = Stamp(
    producer="test@0", goal_id="g-1", occurred_at=NOW, causation_id=None, correlation_id="g-1"
)
TASKS = (
    TaskSpec(task_id="a", description="a", tool="echo", args={"text": "A"}),
    TaskSpec(task_id="b", description="b", tool="echo", args={"text": "B"}, depends_on=("a",)),
    TaskSpec(task_id="c", description="c", tool="echo", args={"text": "C"}, depends_on=("b",)),
    TaskSpec(task_id="d", description="d", tool="echo", args={"text": "D"}),
)

ACCEPTED = GoalAccepted(**STAMP.envelope("goal_accepted"), command_id="c-1", text="do it")
CONTEXT = ContextProvided(**STAMP.envelope("context_provided"), request_id="r", iteration=1)
PLAN = PlanCreated(**STAMP.envelope("plan_created"), iteration=1, strategy="explicit", tasks=TASKS)


def scheduled(task_id: str, iteration: int = 1) -> TaskScheduled:
    return TaskScheduled(
        **STAMP.envelope("task_scheduled", iteration, task_id),
        iteration=iteration,
        task_id=task_id,
        description=task_id,
        tool="echo",
        args={},
        timeout_s=30,
        max_attempts=3,
    )


def completed(task_id: str, output: str, iteration: int = 1) -> TaskCompleted:
    return TaskCompleted(
        **STAMP.envelope("task_completed", iteration, task_id),
        iteration=iteration,
        task_id=task_id,
        tool="echo",
        output=output,
        attempts=1,
        duration_ms=1,
    )


def failed(task_id: str, error: str, iteration: int = 1) -> TaskFailed:
    return TaskFailed(
        **STAMP.envelope("task_failed", iteration, task_id),
        iteration=iteration,
        task_id=task_id,
        tool="echo",
        error=error,
        attempts=3,
        duration_ms=1,
    )


def fold(events: list[Event], state: PlannerState | None = None) -> PlannerState | None:
    for event in events:
        state = evolve(state, event)
    return state


def folded(events: list[Event]) -> PlannerState:
    state = fold(events)
    assert state is not None
    return state


HISTORY: list[Event] = [
    ACCEPTED,
    CONTEXT,
    PLAN,
    scheduled("a"),
    scheduled("d"),
    failed("a", "boom"),
    completed("d", "D!"),
    EvaluationRequested(
        **STAMP.envelope("evaluation_requested"),
        iteration=1,
        text="do it",
        expect=None,
        result="D!",
        tasks=(),
    ),
    EvaluationCompleted(
        **STAMP.envelope("evaluation_completed"),
        request_id="x",
        iteration=1,
        verdict="revise",
        score=0.5,
        feedback="a failed",
    ),
    PlanRevised(
        **STAMP.envelope("plan_revised"),
        iteration=2,
        strategy="revised",
        tasks=TASKS,
        feedback="a failed",
    ),
    scheduled("a", iteration=2),
    completed("a", "A!", iteration=2),
]


@pytest.mark.parametrize("length", range(1, len(HISTORY) + 1))
def test_folding_every_event_twice_equals_folding_it_once(length: int) -> None:
    events = HISTORY[:length]
    doubled = [event for event in events for _ in range(2)]

    assert fold(doubled) == fold(events)


def test_seeing_the_whole_history_again_changes_nothing() -> None:
    once = folded(HISTORY)

    assert fold(HISTORY, once) == once


def test_events_before_goal_accepted_are_ignored() -> None:
    assert fold([CONTEXT, PLAN, scheduled("a")]) is None
    assert folded([CONTEXT, ACCEPTED]).context_received is False


def test_a_rejection_is_a_terminal_state() -> None:
    rejected = GoalRejected(**STAMP.envelope("goal_rejected"), command_id="c-9", reason="bad")

    state = folded([rejected, ACCEPTED, CONTEXT, PLAN])

    assert state.outcome == "rejected"
    assert state.command_id == "c-9"
    assert state.plan is None
    assert is_finished(state)


def test_a_rejection_never_ends_an_accepted_goal() -> None:
    rejected = GoalRejected(**STAMP.envelope("goal_rejected"), command_id="c-9", reason="bad")

    state = folded([ACCEPTED, rejected])

    assert state.outcome is None
    assert state.goal == ACCEPTED


def test_a_failed_task_skips_everything_downstream_of_it() -> None:
    state = folded([ACCEPTED, CONTEXT, PLAN, scheduled("a"), scheduled("d"), failed("a", "boom")])

    assert [state.status_of(task.task_id) for task in TASKS] == [
        "failed",
        "skipped",
        "skipped",
        "scheduled",
    ]
    assert ready_tasks(state) == ()
    assert not state.all_tasks_done


def test_statuses_never_move_backwards() -> None:
    state = folded([ACCEPTED, PLAN, completed("a", "first"), scheduled("a"), failed("a", "late")])

    assert state.status_of("a") == "completed"
    assert state.progress["a"].output == "first"


def test_ready_tasks_are_pending_ones_whose_dependencies_completed() -> None:
    state = folded([ACCEPTED, PLAN])
    assert [task.task_id for task in ready_tasks(state)] == ["a", "d"]

    state = folded([ACCEPTED, PLAN, scheduled("a"), scheduled("d"), completed("a", "A!")])
    assert [task.task_id for task in ready_tasks(state)] == ["b"]


def test_outcomes_and_result_follow_plan_order_and_sinks() -> None:
    state = folded(
        [ACCEPTED, PLAN, completed("d", "D!"), completed("a", "A!"), failed("b", "nope")]
    )

    assert state.all_tasks_done
    assert [(o.task_id, o.status) for o in iteration_outcomes(state)] == [
        ("a", "completed"),
        ("b", "failed"),
        ("c", "skipped"),
        ("d", "completed"),
    ]
    assert iteration_result(state) == "D!"  # c is the other sink, and it was skipped


def test_a_revised_plan_starts_a_fresh_iteration() -> None:
    state = folded(HISTORY)

    assert state.iteration == 2
    assert state.status_of("a") == "completed"
    assert state.status_of("d") == "pending"
    assert not state.evaluation_requested
    assert state.evaluation is None
    assert state.context_received  # context belongs to the goal, not the iteration


def test_an_evaluation_nobody_asked_for_is_not_recorded() -> None:
    evaluation = HISTORY[8]
    assert isinstance(evaluation, EvaluationCompleted)

    state = folded([ACCEPTED, CONTEXT, PLAN, evaluation])

    assert state.evaluation is None


@pytest.mark.parametrize(
    "outcome",
    [
        GoalCompleted(**STAMP.envelope("goal_completed"), result="r", iterations=1, score=1.0),
        GoalFailed(**STAMP.envelope("goal_failed"), reason="r", iterations=1),
    ],
)
def test_an_outcome_finishes_the_goal_for_good(outcome: Event) -> None:
    state = folded([ACCEPTED, PLAN, outcome])
    assert is_finished(state)

    assert fold([completed("a", "A!")], state) == state


def test_an_unknown_goal_is_not_finished() -> None:
    assert not is_finished(None)
    assert not is_finished(folded([ACCEPTED]))
