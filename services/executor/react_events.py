"""The events a ReAct task records: its calls, their outcomes, and its end. Pure.

Every step event is keyed by ``(iteration, task_id, REACT_ATTEMPT, step, call)``
(:func:`call_key`), so the same decision always gets the same event id and a re-publish
after a crash is deduplicated by JetStream.
"""

from __future__ import annotations

from typing import Any

from events.catalog import (
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    ToolCalled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
)
from events.errors import ToolError
from events.model import Stamp
from services.executor import decide
from services.executor.react_record import Turn

__all__ = [
    "REACT_ATTEMPT",
    "call_key",
    "react_called",
    "react_completed",
    "react_failed",
    "react_refused",
    "react_returned",
    "react_tool_failed",
]

# A ReAct task is one attempt: a failing tool is an observation for the model, not a retry.
REACT_ATTEMPT = 1


def call_key(task: TaskScheduled, step: int, call: int) -> tuple[object, ...]:
    return (task.iteration, task.task_id, REACT_ATTEMPT, step, call)


def react_called(
    task: TaskScheduled, *, step: int, call: int, tool: str, args: dict[str, Any], stamp: Stamp
) -> ToolCalled:
    return ToolCalled(
        **stamp.envelope("tool_called", *call_key(task, step, call)),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=tool,
        attempt=REACT_ATTEMPT,
        args=args,
        step=step,
        call=call,
    )


def react_returned(
    task: TaskScheduled,
    *,
    step: int,
    call: int,
    tool: str,
    output: str,
    duration_ms: float,
    stamp: Stamp,
    structured: dict[str, Any] | None = None,
) -> ToolReturned:
    return ToolReturned(
        **stamp.envelope("tool_returned", *call_key(task, step, call)),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=tool,
        attempt=REACT_ATTEMPT,
        output=output,
        duration_ms=duration_ms,
        step=step,
        call=call,
        structured=structured,
    )


def react_tool_failed(
    task: TaskScheduled,
    *,
    step: int,
    call: int,
    tool: str,
    error: ToolError,
    stamp: Stamp,
    duration_ms: float = 0.0,
) -> ToolFailed:
    return ToolFailed(
        **stamp.envelope("tool_failed", *call_key(task, step, call)),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=tool,
        attempt=REACT_ATTEMPT,
        error=str(error),
        transient=error.transient,
        duration_ms=duration_ms,
        step=step,
        call=call,
    )


def react_refused(
    task: TaskScheduled, turn: Turn, number: int, reason: str, stamp: Stamp
) -> ToolRefused:
    step, call = turn.step, turn.reply.tool_calls[number - 1]
    return ToolRefused(
        **stamp.envelope("tool_refused", task.iteration, task.task_id, step, number),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=call.name,
        step=step,
        call=number,
        args=call.arguments,
        reason=reason,
    )


def _duration_ms(turns: tuple[Turn, ...]) -> float:
    """Time the task spent in the model and in its tools, from the record (so a task
    finished after a redelivery reports the same duration)."""
    thinking = sum(turn.reply.latency_ms for turn in turns)
    acting = sum(
        o.duration_ms
        for turn in turns
        for o in turn.observations
        if isinstance(o, ToolReturned | ToolFailed)
    )
    return thinking + acting


def react_completed(
    task: TaskScheduled, answer: str, turns: tuple[Turn, ...], stamp: Stamp
) -> TaskCompleted:
    return decide.completed(task, answer, REACT_ATTEMPT, _duration_ms(turns), stamp)


def react_failed(
    task: TaskScheduled, error: str, turns: tuple[Turn, ...], stamp: Stamp
) -> TaskFailed:
    return decide.failed(task, error, REACT_ATTEMPT, _duration_ms(turns), stamp)
