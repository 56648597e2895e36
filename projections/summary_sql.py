"""``events.summary.summarize`` as one SQL expression, so DuckDB writes the trajectory lines.

The expression reads the columns of the staged batch (``projections.derive``) and must give
exactly the string ``summarize`` gives for the same event; a unit test runs every event type
through both. Keep the two in step: change one, change the other.
"""

from __future__ import annotations

__all__ = ["PYTHON_WHITESPACE", "SUMMARY_SQL", "clip_sql", "cut_sql"]

# Exactly the characters ``str.isspace`` accepts, i.e. what ``str.split()`` splits on (a test
# checks this against every code point). RE2's ``\s`` knows only six of them.
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

_WHITESPACE_RUN = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PYTHON_WHITESPACE) + "]+"


def cut_sql(expr: str, width: int) -> str:
    """SQL for ``events.summary._cut``: longer than ``width`` code points keeps ``width - 1``
    of them plus an ellipsis. A regular expression rather than ``CASE WHEN length(...)`` so
    that ``expr`` is evaluated once, not three times.
    """
    return f"regexp_replace({expr}, '(?s)^(.{{{width - 1}}})..+$', '\\1…')"


def clip_sql(expr: str, width: int) -> str:
    """SQL for ``events.summary._clip``: whitespace runs become one space, then ``cut_sql``."""
    return cut_sql(f"trim(regexp_replace({expr}, '{_WHITESPACE_RUN}', ' ', 'g'), ' ')", width)


def _text(expr: str) -> str:
    return f"CAST({expr} AS VARCHAR)"


_DESCRIPTIONS: dict[str, str] = {
    "goal_accepted": f"'accepted: ' || {clip_sql('text', 60)}",
    "goal_rejected": f"'rejected: ' || {clip_sql('reason', 100)}",
    "context_requested": f"'asked memory for context (k=' || {_text('coalesce(k, 5)')} || ')'",
    "context_provided": (
        f"{_text('coalesce(json_array_length(items), 0)')} || ' memory item(s) provided'"
    ),
    "plan_created": (
        f"'plan #' || {_text('iteration')} || ' (' || strategy || '): ' || "
        "array_to_string(list_transform(tasks, lambda t: t.task_id || ':' || t.tool), ', ')"
    ),
    "plan_revised": (
        f"'plan #' || {_text('iteration')} || ' revised after: ' || {clip_sql('feedback', 60)}"
    ),
    "task_scheduled": f"task_id || ' scheduled: ' || tool || ' ' || {clip_sql('args', 50)}",
    "task_started": f"task_id || ' started (attempt ' || {_text('attempt')} || ')'",
    "tool_called": (
        f"task_id || ' → ' || tool || '(' || {clip_sql('args', 50)} || ') attempt ' || "
        f"{_text('attempt')}"
    ),
    "tool_returned": (
        f"task_id || ' ← ' || {clip_sql('output', 60)} || "
        "' (' || printf('%.1f', duration_ms) || ' ms)'"
    ),
    "tool_failed": (
        "task_id || ' ✗ ' || CASE WHEN transient THEN 'transient' ELSE 'permanent' END || "
        f"': ' || {clip_sql('error', 60)}"
    ),
    "task_completed": f"task_id || ' completed: ' || {clip_sql('output', 60)}",
    "task_failed": (
        f"task_id || ' failed after ' || {_text('attempts')} || ' attempt(s): ' || "
        f"{clip_sql('error', 60)}"
    ),
    "memory_stored": "'remembered ' || key",
    "llm_requested": "'asked ' || model || ' (' || purpose || ')'",
    "llm_responded": (
        f"model || ' answered (' || {_text('coalesce(tokens_in, 0)')} || '→' || "
        f"{_text('coalesce(tokens_out, 0)')} || ' tokens)'"
    ),
    "evaluation_requested": (
        f"'evaluate iteration ' || {_text('iteration')} || ': ' || {clip_sql('result', 50)}"
    ),
    "evaluation_completed": (
        f"verdict || ' (score ' || printf('%.2f', score) || '): ' || {clip_sql('feedback', 60)}"
    ),
    "goal_completed": (
        f"'completed after ' || {_text('iterations')} || ' iteration(s): ' || "
        f"{clip_sql('result', 60)}"
    ),
    "goal_failed": (
        f"'failed after ' || {_text('iterations')} || ' iteration(s): ' || "
        f"{clip_sql('reason', 100)}"
    ),
}

_CASES = "\n".join(f"        WHEN '{tag}' THEN {sql}" for tag, sql in _DESCRIPTIONS.items())

# A type this code does not know (or an event missing a field the line needs) shows its type,
# as ``summarize`` does for unknown event classes.
_DESCRIBE = f"CASE type\n{_CASES}\n        ELSE type\n    END"
SUMMARY_SQL = f"coalesce({cut_sql(_DESCRIBE, 120)}, type)"
