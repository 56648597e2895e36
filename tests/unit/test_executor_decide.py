"""The executor's pure decisions: given a task's recorded events -> plan_execution -> what to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.catalog import (
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    ToolFailed,
)
from events.errors import ToolError
from events.model import Event, Stamp, event_type
from services.executor import decide
from services.executor.decide import AlreadyFinished, FinishFromRecord, Run

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PRODUCER = "executor@0.1.0"


def scheduled(
    *, tool: str = "calculator", max_attempts: int = 3, task_id: str = "s1"
) -> TaskScheduled:
    return TaskScheduled(
        event_id=f"sched-{task_id}",
        goal_id="g-1",
        occurred_at=T0,
        causation_id="plan-1",
        correlation_id="g-1",
        producer="planner@0.1.0",
        iteration=1,
        task_id=task_id,
        description="compute",
        tool=tool,
        args={"expression": "17*23"},
        timeout_s=5.0,
        max_attempts=max_attempts,
    )


def stamp(task: TaskScheduled, seconds: int = 0) -> Stamp:
    return Stamp.caused_by(task, producer=PRODUCER, now=T0 + timedelta(seconds=seconds))


def transient(message: str = "upstream down") -> ToolError:
    return ToolError(message, transient=True)


def history(task: TaskScheduled, *steps: str) -> list[Event]:
    """Recorded events from a compact script: 'started', 'called:1', 'failed:1', 'fatal:1',
    'returned:2', 'completed', 'task_failed'."""
    s = stamp(task)
    events: list[Event] = []
    for step in steps:
        kind, _, number = step.partition(":")
        attempt = int(number or 1)
        match kind:
            case "started":
                events.append(decide.started(task, attempt, s))
            case "called":
                events.append(decide.called(task, attempt, task.args, s))
            case "failed":
                events.append(decide.tool_failed(task, attempt, transient(), 10.0, s))
            case "fatal":
                events.append(decide.tool_failed(task, attempt, ToolError("HTTP 404"), 10.0, s))
            case "returned":
                events.append(decide.returned(task, attempt, "391", 5.0, s))
            case "completed":
                events.append(decide.completed(task, "391", attempt, 5.0, s))
            case "task_failed":
                events.append(decide.failed(task, "HTTP 404", attempt, 10.0, s))
    return events


def plan(task: TaskScheduled, *steps: str) -> decide.Execution:
    record = decide.fold_task(history(task, *steps), task.iteration, task.task_id)
    return decide.plan_execution(task, record, stamp(task, seconds=60))


# -- fold_task ---------------------------------------------------------------------------


def test_fold_collects_only_the_given_task_of_the_given_iteration() -> None:
    task, other = scheduled(task_id="s1"), scheduled(task_id="s2")
    events = [
        *history(task, "started", "called:1", "failed:1", "called:2", "returned:2"),
        *history(other, "started", "called:1", "completed"),
        task,
    ]

    record = decide.fold_task(events, iteration=1, task_id="s1")

    assert record.started is True
    assert record.called_attempts == {1, 2}
    assert record.attempts_made == 2
    assert [f.attempt for f in record.failures] == [1]
    assert record.returned is not None
    assert record.returned.output == "391"
    assert record.completed is False
    assert record.failed is False
    assert record.tool_duration_ms == 15.0
    assert decide.fold_task(events, iteration=2, task_id="s1") == decide.TaskRecord(
        iteration=2, task_id="s1"
    )


def test_fold_counts_a_duplicated_failure_once() -> None:
    task = scheduled()
    events = history(task, "called:1", "failed:1", "failed:1")
    assert len(decide.fold_task(events, 1, "s1").failures) == 1


# -- plan_execution ----------------------------------------------------------------------


def test_nothing_recorded_runs_from_the_first_attempt() -> None:
    assert plan(scheduled()) == Run(first_attempt=1)


@pytest.mark.parametrize(
    "steps",
    [
        ("started", "called:1", "returned:1", "completed"),
        ("started", "called:1", "fatal:1", "task_failed"),
    ],
)
def test_a_finished_task_needs_nothing(steps: tuple[str, ...]) -> None:
    assert plan(scheduled(), *steps) == AlreadyFinished()


def test_a_recorded_result_is_announced_without_running_the_tool_again() -> None:
    task = scheduled()
    execution = plan(task, "started", "called:1", "failed:1", "called:2", "returned:2")

    assert isinstance(execution, FinishFromRecord)
    (event,) = execution.events
    assert isinstance(event, TaskCompleted)
    assert (event.output, event.attempts, event.duration_ms) == ("391", 2, 15.0)
    # The same id the live path would have used, so a late duplicate is dropped by JetStream.
    assert event.event_id == decide.completed(task, "391", 2, 15.0, stamp(task)).event_id
    # The return is an older log's tool_returned: this event only closes the task.
    assert event.attempt_duration_ms is None


def test_a_log_of_todays_shape_folds_without_task_started_or_tool_returned() -> None:
    task = scheduled()
    assert plan(task, "called:1", "failed:1", "called:2", "completed") == AlreadyFinished()
    execution = plan(task, "called:1", "failed:1")
    assert execution == Run(first_attempt=2, tool_duration_ms=10.0)


def test_after_a_recorded_transient_failure_the_next_attempt_runs() -> None:
    execution = plan(scheduled(), "started", "called:1", "failed:1")
    assert execution == Run(first_attempt=2, tool_duration_ms=10.0)


def test_a_call_that_never_returned_counts_as_a_failed_attempt() -> None:
    task = scheduled(tool="write_file")
    execution = plan(task, "started", "called:1")

    assert isinstance(execution, Run)
    assert execution.first_attempt == 2
    (closing,) = execution.prelude
    assert isinstance(closing, ToolFailed)
    assert (closing.attempt, closing.transient) == (1, True)
    assert closing.error == decide.INTERRUPTED_ERROR


def test_an_interrupted_last_attempt_fails_the_task() -> None:
    execution = plan(scheduled(max_attempts=2), "started", "called:1", "failed:1", "called:2")

    assert isinstance(execution, FinishFromRecord)
    closing, gave_up = execution.events
    assert isinstance(closing, ToolFailed)
    assert closing.attempt == 2
    assert isinstance(gave_up, TaskFailed)
    assert (gave_up.attempts, gave_up.error) == (2, decide.INTERRUPTED_ERROR)


def test_a_recorded_permanent_failure_fails_the_task_without_retrying() -> None:
    execution = plan(scheduled(), "started", "called:1", "fatal:1")

    assert isinstance(execution, FinishFromRecord)
    (gave_up,) = execution.events
    assert isinstance(gave_up, TaskFailed)
    assert (gave_up.error, gave_up.attempts, gave_up.duration_ms) == ("HTTP 404", 1, 10.0)


def test_transient_failures_up_to_max_attempts_fail_the_task() -> None:
    execution = plan(
        scheduled(max_attempts=2), "started", "called:1", "failed:1", "called:2", "failed:2"
    )

    assert isinstance(execution, FinishFromRecord)
    (gave_up,) = execution.events
    assert isinstance(gave_up, TaskFailed)
    assert (gave_up.error, gave_up.attempts) == ("upstream down", 2)


# -- retry policy ------------------------------------------------------------------------


def test_backoff_doubles_from_50ms_and_is_capped_at_2s() -> None:
    delays = [decide.next_attempt_delay(transient(), attempt, 100) for attempt in range(1, 9)]
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


def test_give_up_on_permanent_errors_and_exhausted_attempts() -> None:
    assert decide.next_attempt_delay(ToolError("bad args"), 1, 3) is None
    assert decide.next_attempt_delay(transient(), 3, 3) is None
    assert decide.next_attempt_delay(transient(), 2, 3) == 0.1


# -- event builders ----------------------------------------------------------------------


def test_builders_tag_events_and_derive_ids_from_the_decision_only() -> None:
    task = scheduled()
    early, late = stamp(task, 0), stamp(task, 3600)

    pairs = [
        (decide.started(task, 1, early), decide.started(task, 1, late), "task_started"),
        (decide.called(task, 1, {}, early), decide.called(task, 1, {}, late), "tool_called"),
        (
            decide.returned(task, 1, "a", 1.0, early),
            decide.returned(task, 1, "b", 2.0, late),
            "tool_returned",
        ),
        (
            decide.tool_failed(task, 1, transient(), 1.0, early),
            decide.tool_failed(task, 1, transient("other"), 2.0, late),
            "tool_failed",
        ),
        (
            decide.completed(task, "a", 1, 1.0, early),
            decide.completed(task, "a", 3, 9.0, late),
            "task_completed",
        ),
        (
            decide.failed(task, "x", 1, 1.0, early),
            decide.failed(task, "y", 3, 9.0, late),
            "task_failed",
        ),
    ]
    for first, second, tag in pairs:
        assert event_type(first) == tag
        assert first.event_id == second.event_id
        assert first.causation_id == task.event_id
        assert first.correlation_id == task.correlation_id
        assert first.producer == PRODUCER
    assert len({first.event_id for first, _, _ in pairs}) == len(pairs)


def test_per_attempt_events_get_distinct_ids_per_attempt() -> None:
    task, s = scheduled(), stamp(scheduled())
    assert decide.called(task, 1, {}, s).event_id != decide.called(task, 2, {}, s).event_id
    assert decide.tool_failed(task, 1, transient(), 0, s).event_id != (
        decide.tool_failed(task, 2, transient(), 0, s).event_id
    )


def test_ids_differ_between_tasks_and_iterations() -> None:
    s1, s2 = scheduled(task_id="s1"), scheduled(task_id="s2")
    assert decide.started(s1, 1, stamp(s1)).event_id != decide.started(s2, 1, stamp(s2)).event_id
