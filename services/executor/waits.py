"""Durable waits: which attempts wait as timers, and what a timer's wake-up does. Pure.

A ``sleep`` longer than the executor's threshold, or a ``wait_until`` whose time is further
away than that, holds no process and no delivery: its attempt records ``tool_called`` and
``timer_started`` (with the due time) and the delivery is acked;
nats-server keeps the timer (events/timers.py). Shorter sleeps, including the benchmarks'
``sleep 0`` and ``sleep 0.2``, run in process as before: the durable path costs a stored
message and a second delivery, which only a long wait repays.

The wake-up is decided from the goal's log alone, so it is idempotent: a wake-up for a task
that already finished, or for a timer the task no longer waits for, is ignored (with the
reason, for the log line); a cancelled goal's task ends with ``task_cancelled``; an early one
(a clock that runs ahead) arms the timer again; otherwise ``timer_fired`` and the task's
``task_completed`` are written, with the ids every other copy of the decision gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from events.catalog import TaskScheduled, TimerFired, TimerStarted
from events.model import Event, Stamp
from events.tools import SleepArgs, WaitUntilArgs
from services.executor.decide import (
    RETRY,
    Run,
    TaskRecord,
    awaited_timer,
    completed,
    fold_task,
    stopped,
)
from services.executor.react_events import REACT_ATTEMPT
from services.executor.tools.wait_until import reached

__all__ = [
    "EARLY_TOLERANCE_S",
    "DurableWait",
    "Finish",
    "Ignore",
    "Rearm",
    "Retry",
    "WakeDecision",
    "call_timer",
    "durable_call_wait",
    "durable_wait",
    "on_wakeup",
    "pending_timers",
    "retry_timer",
    "start_timer",
    "timer_fired",
    "timer_of",
    "waited_output",
]

# A wake-up at most this much before the due time counts as on time (the server fires on
# whole seconds, rounded up; two machines' clocks may differ slightly).
EARLY_TOLERANCE_S = 1.0


@dataclass(frozen=True, slots=True)
class DurableWait:
    """A wait an attempt spends on a durable timer: until ``due_at``, ``seconds`` from now."""

    due_at: datetime
    seconds: float


def durable_wait(task: TaskScheduled, threshold_s: float, now: datetime) -> DurableWait | None:
    """The durable timer ``task`` waits for, decided at ``now``, or None to run it in process
    (:func:`durable_call_wait` of the task's tool and arguments)."""
    return durable_call_wait(task.tool, task.args, task.timeout_s, threshold_s, now)


def durable_call_wait(
    tool: str,
    args: Mapping[str, Any],
    timeout_s: float | None,
    threshold_s: float,
    now: datetime,
) -> DurableWait | None:
    """The durable timer a call of ``tool`` with ``args`` waits for, decided at ``now``, or
    None to run it in process (a plain task's call, or a call a ReAct task's model asked for).

    A valid ``sleep`` longer than ``threshold_s`` and within its ``timeout_s`` if it has one (a
    plain step's sleep longer than its timeout times out in process, as it always did); a
    valid ``wait_until`` whose time is more than ``threshold_s`` away (a timeout bounds a call
    that runs, and a timer runs nothing). Bad arguments run in process, where the call
    reports them.
    """
    if tool == "sleep":
        try:
            seconds = SleepArgs.model_validate(args).seconds
        except ValidationError:
            return None
        if seconds <= threshold_s or (timeout_s is not None and seconds >= timeout_s):
            return None
        return DurableWait(now + timedelta(seconds=seconds), float(seconds))
    if tool == "wait_until":
        try:
            moment = WaitUntilArgs.model_validate(args).moment
        except ValidationError:
            return None
        seconds = (moment - now).total_seconds()
        return None if seconds <= threshold_s else DurableWait(moment, seconds)
    return None


def start_timer(task: TaskScheduled, attempt: int, wait: DurableWait, stamp: Stamp) -> TimerStarted:
    """The attempt's timer (its purpose is the tool's: ``sleep``, ``wait_until``); its id is
    the event's."""
    return _timer(task, attempt, wait, stamp, purpose=task.tool, tool=task.tool)


def call_timer(
    task: TaskScheduled, *, step: int, call: int, tool: str, wait: DurableWait, stamp: Stamp
) -> TimerStarted:
    """The timer call ``call`` of think ``step`` of ReAct task ``task`` waits for (a ``sleep``
    or ``wait_until`` the model asked for; the purpose is the tool's)."""
    return _timer(task, REACT_ATTEMPT, wait, stamp, purpose=tool, tool=tool, step=step, call=call)


def retry_timer(task: TaskScheduled, attempt: int, seconds: float, stamp: Stamp) -> TimerStarted:
    """The backoff ``attempt`` waits for before it runs, due ``seconds`` after ``stamp``'s
    time (written with the failure of the attempt before it)."""
    wait = DurableWait(stamp.occurred_at + timedelta(seconds=seconds), seconds)
    return _timer(task, attempt, wait, stamp, purpose=RETRY, tool=task.tool)


def _timer(
    task: TaskScheduled,
    attempt: int,
    wait: DurableWait,
    stamp: Stamp,
    *,
    purpose: str,
    tool: str,
    step: int = 0,
    call: int = 0,
) -> TimerStarted:
    key = _timer_key(task, attempt, purpose, step, call)
    envelope = stamp.envelope("timer_started", *key)
    return TimerStarted(
        **envelope,
        iteration=task.iteration,
        task_id=task.task_id,
        tool=tool,
        attempt=attempt,
        timer_id=envelope["event_id"],
        due_at=wait.due_at,
        seconds=wait.seconds,
        purpose=purpose,
        step=step,
        call=call,
    )


def _timer_key(
    task: TaskScheduled, attempt: int, purpose: str, step: int = 0, call: int = 0
) -> tuple[object, ...]:
    # An attempt may wait for its backoff and then, as a long sleep, for its own timer; a
    # ReAct task's one attempt for the timers of several calls, keyed as the calls' events.
    key: tuple[object, ...] = (task.iteration, task.task_id, attempt)
    if purpose == RETRY:
        return (*key, RETRY)
    return (*key, step, call) if step else key


def timer_of(events: Iterable[Event], timer_id: str) -> tuple[TaskScheduled, TimerStarted] | None:
    """The timer ``timer_id`` among a goal's events and the task that started it, or None."""
    recorded = list(events)
    timer = next(
        (e for e in recorded if isinstance(e, TimerStarted) and e.timer_id == timer_id), None
    )
    if timer is None:
        return None
    task = next(
        (
            e
            for e in recorded
            if isinstance(e, TaskScheduled)
            and (e.iteration, e.task_id) == (timer.iteration, timer.task_id)
        ),
        None,
    )
    return None if task is None else (task, timer)


def pending_timers(events: Iterable[Event]) -> list[TimerStarted]:
    """The timers among a goal's events whose task has not finished (each task's latest)."""
    recorded = list(events)
    latest = {(e.iteration, e.task_id): e for e in recorded if isinstance(e, TimerStarted)}
    return [
        timer
        for (iteration, task_id), timer in latest.items()
        if not fold_task(recorded, iteration, task_id).finished
    ]


@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing to do; ``reason`` says why (logged)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Rearm:
    """Woken before the due time: arm the timer again."""

    timer: TimerStarted


@dataclass(frozen=True, slots=True)
class Retry:
    """The backoff before the next attempt is over: ``run`` it (its prelude records the
    ``timer_fired``, written with the attempt's ``tool_called``)."""

    run: Run


@dataclass(frozen=True, slots=True)
class Finish:
    """Write these events (guarded, like every write of the task)."""

    events: tuple[Event, ...]


WakeDecision = Ignore | Rearm | Retry | Finish


def on_wakeup(task: TaskScheduled, record: TaskRecord, timer_id: str, stamp: Stamp) -> WakeDecision:
    """What the wake-up of ``timer_id`` does to ``task`` (its ``record`` folded from the log),
    at ``stamp``'s time."""
    if record.finished:
        return Ignore(f"task {task.task_id} already finished: a duplicate or late wake-up")
    timer = awaited_timer(record)
    if timer is None or timer.timer_id != timer_id:
        # Also a second copy of a backoff's wake-up, whose attempt has started: it never runs
        # twice.
        return Ignore(f"task {task.task_id} does not wait for timer {timer_id}")
    if record.stop is not None:
        return Finish(
            (stopped(task, record.stop, record.attempts_made, record.tool_duration_ms, stamp),)
        )
    if stamp.occurred_at < timer.due_at - timedelta(seconds=EARLY_TOLERANCE_S):
        return Rearm(timer)
    return _fire(task, record, timer, stamp)


def _fire(
    task: TaskScheduled, record: TaskRecord, timer: TimerStarted, stamp: Stamp
) -> WakeDecision:
    """The timer is due: the waiting attempt completes, or the next one runs."""
    now = stamp.occurred_at
    spent_ms = record.tool_duration_ms
    waited_ms = max(0.0, (now - timer.occurred_at).total_seconds() * 1000)
    fired = timer_fired(task, timer, stamp)
    if timer.purpose == RETRY:
        # The wait was no tool's: the attempts' tool time stays what it was.
        return Retry(Run(first_attempt=timer.attempt, prelude=(fired,), tool_duration_ms=spent_ms))
    done = completed(
        task,
        waited_output(timer),
        timer.attempt,
        spent_ms + waited_ms,
        stamp,
        attempt_duration_ms=waited_ms,
    )
    return Finish((fired, done))


def timer_fired(task: TaskScheduled, timer: TimerStarted, stamp: Stamp) -> TimerFired:
    """``timer`` of ``task`` woke it at ``stamp``'s time."""
    key = _timer_key(task, timer.attempt, timer.purpose, timer.step, timer.call)
    return TimerFired(
        **stamp.envelope("timer_fired", *key),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=timer.tool,
        attempt=timer.attempt,
        timer_id=timer.timer_id,
        due_at=timer.due_at,
        late_ms=max(0.0, (stamp.occurred_at - timer.due_at).total_seconds() * 1000),
        step=timer.step,
        call=timer.call,
    )


def waited_output(timer: TimerStarted) -> str:
    """What the waiting tool returns, the same as it would have in process."""
    if timer.purpose == "wait_until":
        return reached(timer.due_at)
    return f"slept {timer.seconds:g}s"
