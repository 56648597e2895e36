"""The dashboard's SQL, pure: a page's filters in, a statement and its parameters out.

What a person typed (a search string, a cursor, a goal id) only ever travels as a parameter of
a ``?`` placeholder, bound by DuckDB in the projector; the SQL text is made of fixed pieces.
Pages are keyset-paginated on ``(submitted_at, goal_id)``, newest first: a page costs the same
whether it is the first or the thousandth, and the browser never receives more than one page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from events.errors import AgoraError
from events.subjects import is_subject_token
from projections.statuses import GOAL_STATUSES

__all__ = [
    "ANALYTICS",
    "GOAL_STATUSES",
    "MAX_SEARCH_CHARS",
    "PAGE_SIZES",
    "BadFilterError",
    "Cursor",
    "GoalFilter",
    "Param",
    "Statement",
    "facts_statement",
    "goal_row_statement",
    "goals_page_statement",
    "parse_filter",
    "status_counts_statement",
    "tasks_statement",
    "waiting_approvals_statement",
]

PAGE_SIZES = (25, 50, 100)
MAX_SEARCH_CHARS = 200
Param = str | int | float | bool | None

# User goals only: the platform keeps its own records (leases, rejected commands) under ids
# starting with "_".
_USER_GOALS = "submitted_at IS NOT NULL AND NOT starts_with(goal_id, '_')"
_GOAL_COLUMNS = (
    "goal_id, status, text, submitted_at, finished_at, iterations, score, "
    "epoch_ms(finished_at) - epoch_ms(submitted_at) AS duration_ms"
)


class BadFilterError(AgoraError):
    """A filter the dashboard cannot use; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    params: tuple[Param, ...] = ()


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: the last row shown (its submission time and id)."""

    submitted_at: str
    goal_id: str

    def encode(self) -> str:
        return f"{self.submitted_at}|{self.goal_id}"


@dataclass(frozen=True, slots=True)
class GoalFilter:
    status: str | None = None
    search: str = ""
    after: Cursor | None = None
    limit: int = PAGE_SIZES[0]

    def query_string(self, *, after: Cursor | None = None) -> str:
        """The filter as URL parameters (``after`` replacing the current cursor)."""
        from urllib.parse import urlencode

        fields: dict[str, str] = {}
        if self.status:
            fields["status"] = self.status
        if self.search:
            fields["q"] = self.search
        if self.limit != PAGE_SIZES[0]:
            fields["limit"] = str(self.limit)
        if after is not None:
            fields["after"] = after.encode()
        return urlencode(fields)


def parse_filter(params: dict[str, str]) -> GoalFilter:
    """A goals page's filter from its URL parameters; ``BadFilterError`` says what is wrong."""
    status = params.get("status", "").strip() or None
    if status is not None and status not in GOAL_STATUSES:
        raise BadFilterError(f"status must be one of {', '.join(GOAL_STATUSES)}")
    search = params.get("q", "").strip()
    if len(search) > MAX_SEARCH_CHARS:
        raise BadFilterError(f"a search is at most {MAX_SEARCH_CHARS} characters")
    raw_limit = params.get("limit", "").strip() or str(PAGE_SIZES[0])
    if not raw_limit.isdigit() or int(raw_limit) not in PAGE_SIZES:
        raise BadFilterError(f"limit must be one of {', '.join(map(str, PAGE_SIZES))}")
    return GoalFilter(
        status=status, search=search, after=_cursor(params.get("after", "")), limit=int(raw_limit)
    )


def _cursor(raw: str) -> Cursor | None:
    if not raw:
        return None
    moment, _, goal_id = raw.partition("|")
    try:
        datetime.fromisoformat(moment)
    except ValueError:
        raise BadFilterError("the page cursor is not one this dashboard made") from None
    if not is_subject_token(goal_id):
        raise BadFilterError("the page cursor is not one this dashboard made")
    return Cursor(moment, goal_id)


def _where(goal_filter: GoalFilter) -> tuple[str, list[Param]]:
    clauses = [_USER_GOALS]
    params: list[Param] = []
    if goal_filter.status:
        clauses.append("status = ?")
        params.append(goal_filter.status)
    if goal_filter.search:
        # contains(), not LIKE: % and _ in a search are the characters themselves.
        clauses.append("(contains(lower(text), ?) OR contains(lower(goal_id), ?))")
        params += [goal_filter.search.lower()] * 2
    return " AND ".join(clauses), params


def goals_page_statement(goal_filter: GoalFilter) -> Statement:
    """One page of goals, newest first, and one row more (whether a next page exists)."""
    where, params = _where(goal_filter)
    if goal_filter.after is not None:
        where += (
            " AND (submitted_at < CAST(? AS TIMESTAMP)"
            " OR (submitted_at = CAST(? AS TIMESTAMP) AND goal_id < ?))"
        )
        after = goal_filter.after
        params += [after.submitted_at, after.submitted_at, after.goal_id]
    sql = (
        f"SELECT {_GOAL_COLUMNS} FROM goals WHERE {where} "  # noqa: S608  fixed pieces only
        "ORDER BY submitted_at DESC, goal_id DESC LIMIT ?"
    )
    return Statement(sql, (*params, goal_filter.limit + 1))


def status_counts_statement(goal_filter: GoalFilter) -> Statement:
    """How many goals match the search, by status (the filter's chips and the total)."""
    where, params = _where(GoalFilter(search=goal_filter.search))
    sql = f"SELECT status, count(*) AS goals FROM goals WHERE {where} GROUP BY status"  # noqa: S608
    return Statement(sql, tuple(params))


def goal_row_statement(goal_id: str) -> Statement:
    sql = (
        f"SELECT {_GOAL_COLUMNS}, result, reason, max_iterations "  # noqa: S608
        "FROM goals WHERE goal_id = ?"
    )
    return Statement(sql, (goal_id,))


def facts_statement(goal_id: str, *, limit: int = 200) -> Statement:
    return Statement(
        "SELECT key, kind, value, importance, recorded_at, source_event_id FROM facts "
        "WHERE goal_id = ? ORDER BY recorded_at, key LIMIT ?",
        (goal_id, limit),
    )


def tasks_statement(goal_id: str) -> Statement:
    return Statement(
        "SELECT iteration, task_id, tool, status, attempts, duration_ms, left(output, 200) "
        "FROM tasks WHERE goal_id = ? ORDER BY iteration, started_at NULLS LAST, task_id",
        (goal_id,),
    )


# What waits for a person: requests not answered, of goals that have not ended.
_WAITING_APPROVALS = (
    "SELECT a.approval_id, a.goal_id, a.task_id, a.tool, a.args, a.reason, a.deadline, "
    "a.answerers, a.requested_at FROM approvals AS a JOIN goals AS g USING (goal_id) "
    "WHERE a.status = 'waiting' AND g.status IN ('running', 'waiting_approval', 'paused')"
)


def waiting_approvals_statement(*, goal_id: str | None = None, limit: int = 100) -> Statement:
    """The tool calls that wait for an answer, oldest first (of one goal, or of all)."""
    where, params = ("", ()) if goal_id is None else (" AND a.goal_id = ?", (goal_id,))
    return Statement(
        f"{_WAITING_APPROVALS}{where} ORDER BY a.requested_at, a.approval_id LIMIT ?",
        (*params, max(1, limit)),
    )


# The analytics page: each chart one query over the views (no user input).
ANALYTICS: dict[str, Statement] = {
    "tools": Statement(
        "SELECT tool, calls, failures, p50_ms, p95_ms FROM tool_stats ORDER BY calls DESC LIMIT 20"
    ),
    "cost_by_day": Statement(
        "SELECT CAST(day AS VARCHAR) AS day, sum(goals) AS goals, sum(tokens_in) AS tokens_in, "
        "sum(tokens_out) AS tokens_out, sum(cost_usd) AS cost_usd FROM goal_stats "
        "GROUP BY day ORDER BY day DESC LIMIT 14"
    ),
    "cost_by_actor": Statement(
        "SELECT split_part(producer, '@', 1) AS actor, count(*) AS calls, "
        "coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out, "
        "coalesce(sum(cost_usd), 0) AS cost_usd FROM events WHERE type = 'llm_responded' "
        "GROUP BY actor ORDER BY cost_usd DESC, calls DESC"
    ),
    "statuses": Statement(
        f"SELECT status, count(*) AS goals FROM goals WHERE {_USER_GOALS} "  # noqa: S608
        "GROUP BY status ORDER BY goals DESC"
    ),
}
