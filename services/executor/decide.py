"""The executor's decisions about one scheduled task. Pure: no I/O, no clock, no ids.

A task's history is folded from the goal's recorded events into a ``TaskRecord``, and
``plan_execution`` decides from it what a (re)delivered ``task_scheduled`` still needs:

- nothing, because the task already finished;
- only the closing events, because the outcome is recorded but a crash came before
  ``task_completed`` / ``task_failed`` was published (the tool is NOT run again);
- running the tool, from the attempt after the last recorded one. An attempt that was
  called but never returned counts as failed: a tool with side effects may have acted, so
  it is never re-run under the same attempt number (at most once per attempt).

A plain task writes ``tool_called`` (its first one is the task's start) and then
``task_completed`` (the successful attempt's return) or ``tool_failed``/``task_failed``
(a backoff longer than the timers' threshold before the next attempt is a ``timer_started``
with purpose ``retry``, written with the ``tool_failed``: that attempt then waits for it); or,
once its goal is cancelled or its iteration interrupted by a message (``goal_cancelled`` /
``iteration_interrupted`` in the record), ``task_cancelled``, and nothing more runs. A task
of a tool without side effects writes no ``tool_called`` before it runs
(``ToolSpec.call_record``: an instant one none at all, one that takes time only once it ran
past a short grace): running it again after a crash is harmless, so such attempts are recorded
by their outcomes alone (``called_at`` set), and a redelivery that finds neither an outcome nor
a call simply runs it. Logs written by older executors also hold ``task_started`` and
``tool_returned``, and a ``tool_called`` for every attempt; they fold the same.

Event ids come from ``Stamp.envelope(tag, iteration, task_id[, attempt])``: the same decision
always gets the same id, so re-publishing after a crash is deduplicated by JetStream.
Durations of a whole task are the sum of its attempts' tool durations, which are recorded,
so a task finished from the record reports the same duration as one finished live.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from events.calls import plain_call
from events.catalog import (
    GoalCancelled,
    IterationInterrupted,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TimerStarted,
    ToolCalled,
    ToolFailed,
    ToolReturned,
)
from events.errors import ToolError
from events.model import Event, Stamp

__all__ = [
    "CANCELLED_REASON",
    "INTERRUPTED_ERROR",
    "RETRY",
    "AlreadyFinished",
    "AwaitTimer",
    "Backoff",
    "Execution",
    "FinishFromRecord",
    "Run",
    "TaskRecord",
    "TaskStop",
    "awaited_timer",
    "called",
    "cancelled",
    "completed",
    "failed",
    "fold_task",
    "interrupted_reason",
    "next_attempt_delay",
    "plan_execution",
    "returned",
    "started",
    "stop_of",
    "stopped",
    "tool_failed",
]

# ``timer_started.purpose`` of the backoff before a task's next attempt (the other purposes
# name the waiting tool: the attempt itself waits).
RETRY = "retry"
INTERRUPTED_ERROR = "the executor stopped before the tool returned; attempt counted as failed"
CANCELLED_REASON = "the goal was cancelled"


def interrupted_reason(iteration: int) -> str:
    """Why a task of ``iteration`` ended when a message interrupted that iteration."""
    return f"iteration {iteration} was interrupted by a message"


# What ends a task that has not finished: its goal's cancellation, or its iteration's
# interruption by a message (the planner revises at once, the task's result no longer counts).
TaskStop = GoalCancelled | IterationInterrupted


@dataclass(frozen=True, slots=True)
class Backoff:
    """The wait before a task's next attempt after a transient failure: ``first_s`` before
    the second attempt, doubling per attempt, at most ``max_s`` (AGORA_RETRY_BACKOFF_S,
    AGORA_RETRY_BACKOFF_MAX_S)."""

    first_s: float = 0.05
    max_s: float = 2.0

    def before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (the second or later)."""
        return float(min(self.first_s * 2 ** (attempt - 2), self.max_s))


# -- the record of one task --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskRecord:
    iteration: int
    task_id: str
    started: bool = False
    called_attempts: frozenset[int] = frozenset()
    returned: ToolReturned | None = None
    failures: tuple[ToolFailed, ...] = ()
    completed: bool = False
    failed: bool = False
    cancelled: bool = False
    # The task's latest durable timer: the one its latest attempt waits for (a long sleep, a
    # wait_until), or the backoff its next attempt waits for (purpose RETRY), if any.
    timer: TimerStarted | None = None
    # The goal's cancellation or the iteration's interruption, when it is recorded: nothing
    # more of the task may run.
    stop: TaskStop | None = None

    @property
    def finished(self) -> bool:
        return self.completed or self.failed or self.cancelled

    @property
    def attempts_made(self) -> int:
        return max(self.called_attempts, default=0)

    @property
    def tool_duration_ms(self) -> float:
        spent = sum(failure.duration_ms for failure in self.failures)
        return spent + (self.returned.duration_ms if self.returned else 0.0)

    def failure_of(self, attempt: int) -> ToolFailed | None:
        return next((f for f in self.failures if f.attempt == attempt), None)


def fold_task(events: Iterable[Event], iteration: int, task_id: str) -> TaskRecord:
    """The record of task ``task_id`` in ``iteration``, from a goal's events in stream order."""
    record = TaskRecord(iteration=iteration, task_id=task_id)
    for event in events:
        if isinstance(event, GoalCancelled | IterationInterrupted) and _stops(event, iteration):
            if record.stop is None:
                record = replace(record, stop=event)
        elif _of_task(event, iteration, task_id):
            record = _evolve(record, event)
    return record


def _of_task(event: Event, iteration: int, task_id: str) -> bool:
    return getattr(event, "iteration", None) == iteration and (
        getattr(event, "task_id", None) == task_id
    )


def _stops(event: Event, iteration: int) -> bool:
    return isinstance(event, GoalCancelled) or (
        isinstance(event, IterationInterrupted) and event.iteration == iteration
    )


def stop_of(events: Iterable[Event], iteration: int) -> TaskStop | None:
    """What among ``events`` stops a task of ``iteration``: the goal's ``goal_cancelled``, or
    that iteration's ``iteration_interrupted``; None when nothing does."""
    for event in events:
        if isinstance(event, GoalCancelled | IterationInterrupted) and _stops(event, iteration):
            return event
    return None


def _evolve(record: TaskRecord, event: Event) -> TaskRecord:
    evolved = record
    match event:
        case TaskStarted():
            evolved = replace(record, started=True)
        case ToolCalled(attempt=attempt):
            evolved = replace(record, called_attempts=record.called_attempts | {attempt})
        case ToolReturned():
            evolved = replace(record, returned=event)
        case TimerStarted():
            evolved = replace(record, timer=event)
        case ToolFailed(attempt=attempt) if record.failure_of(attempt) is None:
            # A duplicate of an attempt's failure (same event id) must not count twice. The
            # failure is the attempt's call too when no tool_called recorded it (called_at).
            evolved = replace(
                record,
                called_attempts=record.called_attempts | {attempt},
                failures=(*record.failures, event),
            )
        case TaskCompleted():
            evolved = replace(record, completed=True)
        case TaskFailed():
            evolved = replace(record, failed=True)
        case TaskCancelled():
            evolved = replace(record, cancelled=True)
    return evolved


# -- what to do about a scheduled task ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlreadyFinished:
    """task_completed or task_failed is recorded: nothing to do."""


@dataclass(frozen=True, slots=True)
class FinishFromRecord:
    """The outcome is recorded but not yet announced: publish these events, run nothing."""

    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Run:
    """Run the tool from ``first_attempt``.

    ``prelude`` closes an interrupted earlier attempt (publish it first); ``tool_duration_ms``
    is the time the recorded attempts already spent.
    """

    first_attempt: int
    prelude: tuple[Event, ...] = ()
    tool_duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class AwaitTimer:
    """The latest attempt waits for its durable timer, or the next one for its backoff: arm
    it again (arming is idempotent; the wake-up goes on with the task), run nothing."""

    timer: TimerStarted


Execution = AlreadyFinished | FinishFromRecord | Run | AwaitTimer


def plan_execution(task: TaskScheduled, record: TaskRecord, stamp: Stamp) -> Execution:
    """What a delivery of ``task`` still has to do, given what is already recorded."""
    if record.finished:
        return AlreadyFinished()
    spent_ms = record.tool_duration_ms
    if record.stop is not None:
        # The goal ended, or the iteration did: the task stops where the record says it is.
        return FinishFromRecord(
            (stopped(task, record.stop, record.attempts_made, spent_ms, stamp),)
        )
    if record.returned is not None:
        result = record.returned
        # The attempt's return is recorded (tool_returned): this event only closes the task.
        return FinishFromRecord((completed(task, result.output, result.attempt, spent_ms, stamp),))
    timer = awaited_timer(record)
    if timer is not None:
        # Not an interrupted call: the attempt waits, durably, for its wake-up (or the next
        # one for its backoff, and the wake-up runs it).
        return AwaitTimer(timer)
    last = record.attempts_made
    if last == 0:
        return Run(first_attempt=1)
    return _after_attempt(task, record, last, stamp)


def awaited_timer(record: TaskRecord) -> TimerStarted | None:
    """The durable timer the task waits for now: its latest attempt's own (a long sleep, a
    wait_until), or the backoff of the attempt after it; None when it waits for none."""
    timer = record.timer
    if timer is None:
        return None
    waiting = record.attempts_made + (1 if timer.purpose == RETRY else 0)
    return timer if timer.attempt == waiting else None


def _after_attempt(task: TaskScheduled, record: TaskRecord, last: int, stamp: Stamp) -> Execution:
    """What follows attempt ``last``, which failed or was interrupted: the next, or the end."""
    spent_ms = record.tool_duration_ms
    prelude: tuple[Event, ...] = ()
    last_failure = record.failure_of(last)
    if last_failure is None:
        interrupted = ToolError(INTERRUPTED_ERROR, transient=True)
        prelude = (tool_failed(task, last, interrupted, 0.0, stamp),)
        last_error = interrupted
    else:
        last_error = ToolError(last_failure.error, transient=last_failure.transient)

    if next_attempt_delay(last_error, last, task.max_attempts) is None:
        return FinishFromRecord(
            (
                *prelude,
                failed(
                    task, str(last_error), last, spent_ms, stamp, transient=last_error.transient
                ),
            )
        )
    return Run(
        first_attempt=last + 1,
        prelude=prelude,
        tool_duration_ms=spent_ms,
    )


def next_attempt_delay(
    error: ToolError, attempt: int, max_attempts: int, backoff: Backoff = Backoff()
) -> float | None:
    """Seconds to wait before the attempt after ``attempt``, or None to give up.

    Giving up: the error is not transient, or ``attempt`` was the last one allowed.
    Otherwise exponential backoff: by default 0.05 s, 0.1 s, 0.2 s, ... capped at 2 s.
    """
    if not error.transient or attempt >= max_attempts:
        return None
    return backoff.before(attempt + 1)


# -- the events the executor records -----------------------------------------------------


def started(task: TaskScheduled, attempt: int, stamp: Stamp) -> TaskStarted:
    return TaskStarted(
        **stamp.envelope("task_started", task.iteration, task.task_id, attempt),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=task.tool,
        attempt=attempt,
    )


def called(task: TaskScheduled, attempt: int, args: dict[str, Any], stamp: Stamp) -> ToolCalled:
    return plain_call(task, attempt, args, stamp)


def returned(
    task: TaskScheduled, attempt: int, output: str, duration_ms: float, stamp: Stamp
) -> ToolReturned:
    return ToolReturned(
        **stamp.envelope("tool_returned", task.iteration, task.task_id, attempt),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=task.tool,
        attempt=attempt,
        output=output,
        duration_ms=duration_ms,
    )


def tool_failed(
    task: TaskScheduled,
    attempt: int,
    error: ToolError,
    duration_ms: float,
    stamp: Stamp,
    *,
    called_at: datetime | None = None,
) -> ToolFailed:
    """``called_at``: when the attempt's tool was called, for a call no tool_called recorded."""
    return ToolFailed(
        **stamp.envelope("tool_failed", task.iteration, task.task_id, attempt),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=task.tool,
        attempt=attempt,
        error=str(error),
        transient=error.transient,
        duration_ms=duration_ms,
        called_at=called_at,
    )


def completed(
    task: TaskScheduled,
    output: str,
    attempts: int,
    duration_ms: float,
    stamp: Stamp,
    *,
    attempt_duration_ms: float | None = None,
    structured: dict[str, Any] | None = None,
    called_at: datetime | None = None,
) -> TaskCompleted:
    """``called_at``: when the successful attempt's tool was called, for a call no
    tool_called recorded (then this event is the call's whole record)."""
    # Keyed without the attempt: a task completes once, whichever attempt succeeded.
    return TaskCompleted(
        **stamp.envelope("task_completed", task.iteration, task.task_id),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=task.tool,
        output=output,
        attempts=attempts,
        duration_ms=duration_ms,
        attempt_duration_ms=attempt_duration_ms,
        structured=structured,
        called_at=called_at,
    )


def failed(
    task: TaskScheduled,
    error: str,
    attempts: int,
    duration_ms: float,
    stamp: Stamp,
    *,
    transient: bool = True,
) -> TaskFailed:
    return TaskFailed(
        **stamp.envelope("task_failed", task.iteration, task.task_id),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=task.tool,
        error=error,
        attempts=attempts,
        duration_ms=duration_ms,
        transient=transient,
    )


def stopped(
    task: TaskScheduled, stop: TaskStop, attempts: int, duration_ms: float, stamp: Stamp
) -> TaskCancelled:
    """The task's ``task_cancelled``, with why: its goal was cancelled, or a message
    interrupted its iteration."""
    if isinstance(stop, GoalCancelled):
        return cancelled(task, attempts, duration_ms, stamp)
    return cancelled(task, attempts, duration_ms, stamp, reason=interrupted_reason(stop.iteration))


def cancelled(
    task: TaskScheduled,
    attempts: int,
    duration_ms: float,
    stamp: Stamp,
    *,
    reason: str = CANCELLED_REASON,
) -> TaskCancelled:
    # Keyed as the task's other outcomes are: a task stops once.
    return TaskCancelled(
        **stamp.envelope("task_cancelled", task.iteration, task.task_id),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=task.tool,
        attempts=attempts,
        duration_ms=duration_ms,
        reason=reason,
    )
