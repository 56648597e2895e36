"""What agora's MCP tools answer, built from the client library's replies. Pure: no I/O.

Rows of the views become JSON objects keyed by column, a goal's events become one outcome,
and each event becomes the line a progress notification carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from events.catalog import GoalCancelled, GoalCompleted, GoalFailed, GoalRejected
from events.model import Event, event_type
from events.summary import event_line
from projections.protocol import QueryReply

__all__ = [
    "OUTCOME_STATUS",
    "goal_outcome",
    "progress_line",
    "rows_of",
    "still_running",
    "view_schema",
]

# The status a terminal event gives a goal, as the ``goals`` view spells it.
OUTCOME_STATUS: dict[type[Event], str] = {
    GoalCompleted: "completed",
    GoalFailed: "failed",
    GoalRejected: "rejected",
    GoalCancelled: "cancelled",
}


def rows_of(reply: QueryReply) -> list[dict[str, Any]]:
    """The reply's rows as objects keyed by column name."""
    return [dict(zip(reply.columns, row, strict=True)) for row in reply.rows]


def progress_line(event: Event) -> str:
    """What a progress notification says about one event: its type and its summary."""
    return event_line(event)


def goal_outcome(goal_id: str, events: Sequence[Event], last_seq: int) -> dict[str, Any]:
    """A finished goal, from its events up to the terminal one (the last)."""
    final = events[-1]
    outcome: dict[str, Any] = {
        "goal_id": goal_id,
        "finished": True,
        "status": OUTCOME_STATUS.get(type(final), event_type(final)),
        "final_event": event_type(final),
        "events": len(events),
        "last_seq": last_seq,
    }
    if isinstance(final, GoalCompleted):
        outcome.update(result=final.result, score=final.score, iterations=final.iterations)
    elif isinstance(final, GoalFailed | GoalRejected | GoalCancelled):
        outcome["reason"] = final.reason
    return outcome


def still_running(goal_id: str, events: Sequence[Event], waited_s: float) -> dict[str, Any]:
    """A goal that did not finish within the wait: it goes on running."""
    return {
        "goal_id": goal_id,
        "finished": False,
        "status": "running" if events else "unknown",
        "events": len(events),
        "last_event": event_type(events[-1]) if events else None,
        "note": (
            f"not finished after {waited_s:g}s; it keeps running: call wait_goal again"
            if events
            else f"no event of this goal within {waited_s:g}s: check the goal id (and that "
            "agora's planner runs)"
        ),
    }


def view_schema(view: str, describe: QueryReply) -> dict[str, Any]:
    """A view's columns from DuckDB's ``DESCRIBE`` (column_name, column_type, null, …)."""
    columns = [
        {"name": row["column_name"], "type": row["column_type"]} for row in rows_of(describe)
    ]
    return {"view": view, "columns": columns}
