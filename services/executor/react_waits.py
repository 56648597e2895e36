"""The wake-up of a durable timer a ReAct task's call waits on. Pure.

A ``sleep`` or ``wait_until`` the model asked for that waits longer than the timers' threshold
is recorded as the call's ``tool_called`` and a ``timer_started`` naming its ``step`` and
``call`` (``react.WaitDurably``), and the task holds nothing while it waits. Its wake-up is
decided from the goal's log alone, like a plain task's (``waits.on_wakeup``), so any copy of
it decides the same:

- the task finished (a cancel ended it meanwhile), the timer is not one of its calls', or the
  call's outcome is recorded (a second copy of the wake-up): nothing, with the reason;
- the goal was cancelled or the iteration interrupted: ``task_cancelled``;
- woken more than a second early: the timer is armed again;
- otherwise ``timer_fired`` and the call's ``tool_returned``, the tool's result in process
  (``slept 3600s``, ``waited until …``), with the ids every copy of the decision gets.

The ``timer_fired`` is delivered to the executor, which resumes the task from its record, as
after an approval's answer (``react_handler.resume_react``): the model sees the result of its
call in its next think, and its earlier thinks are answered from the log.
"""

from __future__ import annotations

from datetime import timedelta

from events.catalog import TaskScheduled
from events.model import Stamp
from services.executor.decide import TaskStop, stopped
from services.executor.react_events import REACT_ATTEMPT, react_returned
from services.executor.react_record import ReactRecord
from services.executor.waits import (
    EARLY_TOLERANCE_S,
    Finish,
    Ignore,
    Rearm,
    WakeDecision,
    timer_fired,
    waited_output,
)

__all__ = ["on_call_wakeup"]


def on_call_wakeup(
    task: TaskScheduled,
    record: ReactRecord,
    stop: TaskStop | None,
    timer_id: str,
    stamp: Stamp,
) -> WakeDecision:
    """What the wake-up of ``timer_id`` does to ReAct task ``task`` (its ``record`` folded from
    the log, ``stop`` the goal's cancellation or the iteration's interruption, if recorded), at
    ``stamp``'s time."""
    if record.finished:
        return Ignore(f"task {task.task_id} already finished: a duplicate or late wake-up")
    timer = next((t for t in record.timers.values() if t.timer_id == timer_id), None)
    if timer is None:
        return Ignore(f"task {task.task_id} has no call waiting on timer {timer_id}")
    if (timer.step, timer.call) in record.outcomes:
        return Ignore(f"call {timer.call} of step {timer.step} was woken already")
    if stop is not None:
        return Finish((stopped(task, stop, REACT_ATTEMPT, 0.0, stamp),))
    if stamp.occurred_at < timer.due_at - timedelta(seconds=EARLY_TOLERANCE_S):
        return Rearm(timer)
    waited_ms = max(0.0, (stamp.occurred_at - timer.occurred_at).total_seconds() * 1000)
    returned = react_returned(
        task,
        step=timer.step,
        call=timer.call,
        tool=timer.tool,
        output=waited_output(timer),
        duration_ms=waited_ms,
        stamp=stamp,
    )
    return Finish((timer_fired(task, timer, stamp), returned))
