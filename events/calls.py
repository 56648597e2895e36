"""A plain task's tool call as an event: recorded before it ran, or implied by its outcome.

An attempt of a tool that has side effects is recorded as ``tool_called`` before the tool runs;
one of a tool without side effects that takes time, only if it runs past a short grace (while
it runs). An attempt of an instant tool without side effects (``echo``, ``calculator``), or one
that ended within its grace, is not: its outcome (``task_completed`` or ``tool_failed``)
carries ``called_at`` and is the call's whole record. Readers that show calls (the timeline
and traces, AG-UI, re-run, the fault checker) fold such an outcome as the ``tool_called`` it
stands for, followed by itself: ``implied_call`` builds it, with the very event id the executor
gives a recorded call, so both kinds of log show a call the same way. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from events.catalog import TaskCompleted, TaskScheduled, ToolCalled, ToolFailed
from events.ids import derive_id
from events.model import Stamp

__all__ = ["implied_call", "plain_call", "plain_call_id"]


def plain_call(task: TaskScheduled, attempt: int, args: dict[str, Any], stamp: Stamp) -> ToolCalled:
    """Attempt ``attempt`` of ``task``'s tool, with ``args`` (the task's)."""
    return ToolCalled(
        **stamp.envelope("tool_called", task.iteration, task.task_id, attempt),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=task.tool,
        attempt=attempt,
        args=args,
    )


def plain_call_id(producer: str, goal_id: str, iteration: int, task_id: str, attempt: int) -> str:
    """The event id of attempt ``attempt`` of a plain task's call, recorded or implied: what
    ``plain_call`` stamps it with, for readers that do not build the event itself."""
    return derive_id(producer.split("@", 1)[0], goal_id, "tool_called", iteration, task_id, attempt)


def implied_call(outcome: TaskCompleted | ToolFailed, task: TaskScheduled) -> ToolCalled | None:
    """The call ``outcome`` of ``task`` is the whole record of (its ``called_at`` is set), as
    the ``tool_called`` it stands for; None when a ``tool_called`` of its own recorded it."""
    if outcome.called_at is None:
        return None
    attempt = outcome.attempts if isinstance(outcome, TaskCompleted) else outcome.attempt
    stamp = Stamp(
        producer=outcome.producer,
        goal_id=outcome.goal_id,
        occurred_at=outcome.called_at,
        causation_id=outcome.causation_id,
        correlation_id=outcome.correlation_id,
    )
    return plain_call(task, attempt, task.args, stamp)
