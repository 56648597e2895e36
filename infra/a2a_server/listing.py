"""``ListTasks`` as a query of the ``goals`` view, and its page tokens. Pure: no I/O.

The tasks listed are those sent over A2A: goals whose id is an A2A task id
(:func:`infra.a2a_server.messages.task_ids`). They come most recently updated first, in the
log's order (a goal's latest event: ``goals.last_seq``), so a page token is the last listed
goal's ``last_seq``: it stays valid however the tasks change meanwhile (a task updated after a
page was read moves above the token, and is not listed twice).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC

from a2a.types import ListTasksRequest, TaskState
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE

from events.errors import AgoraError

__all__ = [
    "A2A_TASK_ID_PATTERN",
    "BadListRequestError",
    "ListedGoal",
    "TaskListQuery",
    "page_token",
    "task_list_query",
]

# What messages.task_ids makes: a2a- and 24 hex digits of the message id's hash.
A2A_TASK_ID_PATTERN = "^a2a-[0-9a-f]{24}$"

# The goals view's status for each task state asked for (docs/a2a.md, States). SUBMITTED
# tasks (the planner has not read their command) are not in the views yet.
_GOAL_STATUSES: dict[int, tuple[str, ...]] = {
    TaskState.TASK_STATE_SUBMITTED: (),
    TaskState.TASK_STATE_WORKING: ("queued", "running", "paused"),
    TaskState.TASK_STATE_INPUT_REQUIRED: ("waiting_approval",),
    TaskState.TASK_STATE_COMPLETED: ("completed",),
    TaskState.TASK_STATE_FAILED: ("failed",),
    TaskState.TASK_STATE_REJECTED: ("rejected",),
    TaskState.TASK_STATE_CANCELED: ("cancelled",),
    TaskState.TASK_STATE_AUTH_REQUIRED: (),
}


class BadListRequestError(AgoraError):
    """A ``ListTasks`` request agora cannot answer as asked (a page token it never gave)."""


@dataclass(frozen=True, slots=True)
class ListedGoal:
    """A row of the page: the goal, and the latest event of it the views include."""

    goal_id: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class TaskListQuery:
    """The page's SQL (one row more than the page, to know whether another follows) and the
    count of every task the filters match, with their parameters."""

    page_sql: str
    page_params: tuple[str | int, ...]
    count_sql: str
    count_params: tuple[str | int, ...]
    page_size: int


def page_token(last_seq: int) -> str:
    """The token of the page after the goal whose latest event is at ``last_seq``."""
    raw = json.dumps({"before_seq": last_seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _before_seq(token: str) -> int:
    padded = token + "=" * (-len(token) % 4)
    try:
        given = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError):
        given = None
    before = given.get("before_seq") if isinstance(given, dict) else None
    if not isinstance(before, int) or isinstance(before, bool) or before < 1:
        raise BadListRequestError(
            f"page token {token[:40]!r} is not one agora gave: pass next_page_token as it came"
        )
    return before


def task_list_query(request: ListTasksRequest) -> TaskListQuery:
    """The query answering ``request`` (page size already checked to be 1-100)."""
    where = ["regexp_matches(g.goal_id, ?)"]
    params: list[str | int] = [A2A_TASK_ID_PATTERN]
    if request.context_id:
        # A rejected goal has no metadata: its task's context is its id (tasks.py).
        where.append("coalesce(json_extract_string(g.metadata, '$.a2a.context_id'), g.goal_id) = ?")
        params.append(request.context_id)
    if request.status != TaskState.TASK_STATE_UNSPECIFIED:
        statuses = _GOAL_STATUSES.get(request.status, ())
        if statuses:
            where.append(f"g.status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        else:
            where.append("false")
    if request.HasField("status_timestamp_after"):
        after = request.status_timestamp_after.ToDatetime(tzinfo=UTC).replace(tzinfo=None)
        where.append(
            "EXISTS (SELECT 1 FROM events AS e WHERE e.stream_seq = g.last_seq "
            "AND e.occurred_at >= CAST(? AS TIMESTAMP))"
        )
        params.append(after.isoformat())
    matching = " AND ".join(where)
    count_sql = f"SELECT count(*) FROM goals AS g WHERE {matching}"  # noqa: S608 -- placeholders
    page_where = matching
    page_params = list(params)
    if request.page_token:
        page_where += " AND g.last_seq < ?"
        page_params.append(_before_seq(request.page_token))
    size = request.page_size or DEFAULT_LIST_TASKS_PAGE_SIZE
    page_sql = (
        f"SELECT g.goal_id, g.last_seq FROM goals AS g WHERE {page_where} "  # noqa: S608
        f"ORDER BY g.last_seq DESC LIMIT {size + 1}"
    )
    return TaskListQuery(
        page_sql=page_sql,
        page_params=tuple(page_params),
        count_sql=count_sql,
        count_params=tuple(params),
        page_size=size,
    )
