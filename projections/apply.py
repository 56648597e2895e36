"""What one event changes in the read models, as data. Pure: no DuckDB, no clock.

Every event, of any type (including types newer than this code), becomes a row of ``events``
and of ``trajectory_log`` and moves its goal's ``last_seq``. Lifecycle, task and memory events
additionally carry *partial* rows: only the columns that event knows, merged per key later
(see ``projections.batch`` and the merge rules in ``projections.schema``).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from events.catalog import (
    EvaluationCompleted,
    GoalAccepted,
    GoalCompleted,
    GoalFailed,
    GoalRejected,
    LlmResponded,
    MemoryStored,
    PlanCreated,
    PlanRevised,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    ToolCalled,
    ToolFailed,
    ToolReturned,
)
from events.codec import encode
from events.model import Event, event_type
from events.summary import summarize

__all__ = ["Row", "RowChange", "apply"]

Row = dict[str, Any]

TaskEvent = (
    TaskScheduled
    | TaskStarted
    | ToolCalled
    | ToolReturned
    | ToolFailed
    | TaskCompleted
    | TaskFailed
)


class RowChange(NamedTuple):
    table: str
    kind: Literal["insert", "upsert"]
    row: Row


def apply(event: Event, stream_seq: int) -> list[RowChange]:
    """The row changes recording ``event``, which sits at ``stream_seq`` in the event stream."""
    changes = [
        RowChange("events", "insert", _event_row(event, stream_seq)),
        RowChange("trajectory_log", "insert", _trajectory_row(event, stream_seq)),
        RowChange(
            "goals",
            "upsert",
            {"goal_id": event.goal_id, "last_seq": stream_seq, **_goal_fields(event)},
        ),
    ]
    if isinstance(event, TaskEvent):
        changes.append(RowChange("tasks", "upsert", _task_row(event, stream_seq)))
    if isinstance(event, MemoryStored):
        changes.append(RowChange("facts", "insert", _fact_row(event)))
    return changes


def _json(value: object) -> str:
    return encode(value).decode()


def _event_row(event: Event, stream_seq: int) -> Row:
    return {
        "stream_seq": stream_seq,
        "event_id": event.event_id,
        "goal_id": event.goal_id,
        "type": event_type(event),
        "occurred_at": event.occurred_at,
        "payload": _json(event),
    }


def _trajectory_row(event: Event, stream_seq: int) -> Row:
    return {
        "goal_id": event.goal_id,
        "stream_seq": stream_seq,
        "occurred_at": event.occurred_at,
        "type": event_type(event),
        "actor": event.producer.split("@", 1)[0],
        "summary": summarize(event),
        "event_id": event.event_id,
        **_trajectory_measures(event),
    }


def _trajectory_measures(event: Event) -> Row:
    match event:
        case ToolReturned() | ToolFailed() | TaskCompleted() | TaskFailed():
            return {"duration_ms": event.duration_ms, "tool": event.tool}
        case TaskScheduled() | TaskStarted() | ToolCalled():
            return {"tool": event.tool}
        case LlmResponded():
            return {
                "duration_ms": event.latency_ms,
                "tokens_in": event.tokens_in,
                "tokens_out": event.tokens_out,
                "cost_usd": event.cost_usd,
            }
        case _:
            return {}


def _goal_fields(event: Event) -> Row:
    fields: Row = {}
    match event:
        case GoalAccepted():
            fields = {
                "text": event.text,
                "status": "running",
                "submitted_at": event.occurred_at,
                "command_id": event.command_id,
                "metadata": _json(event.metadata),
                "max_iterations": event.max_iterations,
            }
        case GoalRejected():
            fields = {
                "text": event.text or None,
                "status": "rejected",
                "submitted_at": event.occurred_at,
                "finished_at": event.occurred_at,
                "command_id": event.command_id,
                "reason": event.reason,
            }
        case PlanCreated() | PlanRevised():
            fields = {"iterations": event.iteration}
        case EvaluationCompleted():
            fields = {"score": event.score}
        case GoalCompleted():
            fields = {
                "status": "completed",
                "finished_at": event.occurred_at,
                "iterations": event.iterations,
                "score": event.score,
                "result": event.result,
            }
        case GoalFailed():
            fields = {
                "status": "failed",
                "finished_at": event.occurred_at,
                "iterations": event.iterations,
                "score": event.score,
                "reason": event.reason,
            }
    return fields


def _task_row(event: TaskEvent, stream_seq: int) -> Row:
    row: Row = {
        "goal_id": event.goal_id,
        "iteration": event.iteration,
        "task_id": event.task_id,
        "tool": event.tool,
        "last_seq": stream_seq,
    }
    match event:
        case TaskScheduled():
            row |= {
                "description": event.description,
                "status": "scheduled",
                "args": _json(event.args),
                "max_attempts": event.max_attempts,
            }
        case TaskStarted():
            row |= {"status": "running", "started_at": event.occurred_at}
        case ToolCalled():
            row |= {"attempts": event.attempt}
        case TaskCompleted():
            row |= {
                "status": "completed",
                "finished_at": event.occurred_at,
                "output": event.output,
                "attempts": event.attempts,
                "duration_ms": event.duration_ms,
            }
        case TaskFailed():
            row |= {
                "status": "failed",
                "finished_at": event.occurred_at,
                "error": event.error,
                "attempts": event.attempts,
                "duration_ms": event.duration_ms,
            }
        case ToolReturned() | ToolFailed():
            pass  # their outcome reaches the task through task_completed / task_failed
    return row


def _fact_row(event: MemoryStored) -> Row:
    return {
        "goal_id": event.goal_id,
        "key": event.key,
        "value": event.text,
        "source_event_id": event.source_event_id,
        "recorded_at": event.occurred_at,
        "kind": event.kind,
        "importance": event.importance,
        "event_id": event.event_id,
    }
