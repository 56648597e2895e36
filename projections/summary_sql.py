"""``events.summary.summarize`` as one SQL expression, so DuckDB writes the trajectory lines.

The ``trajectory`` view evaluates it at query time over the stored payload (``type`` is the
event's type column, every other field is read from ``doc``, the payload parsed with
``SUMMARY_FIELDS``), so writing a batch never pays for a line only a human reads. It must give
exactly the string ``summarize`` gives for the same event; a unit test runs every event type
through both. Keep the two in step: change one, change the other.
"""

from __future__ import annotations

from events.summary import REASON_WIDTH

__all__ = [
    "PYTHON_WHITESPACE",
    "SUMMARY_DOC",
    "SUMMARY_FIELDS",
    "SUMMARY_SQL",
    "clip_sql",
    "cut_sql",
]

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


# The event's own fields, parsed from its stored payload by whoever evaluates the expression
# (the ``trajectory`` view): ``doc`` is ``json_transform(payload, SUMMARY_FIELDS)``.
SUMMARY_FIELDS: dict[str, object] = {
    "text": "VARCHAR",
    "reason": "VARCHAR",
    "k": "INTEGER",
    "items": "JSON",
    "iteration": "INTEGER",
    "iterations": "INTEGER",
    "strategy": "VARCHAR",
    "tasks": [{"task_id": "VARCHAR", "tool": "VARCHAR"}],
    "feedback": "VARCHAR",
    "task_id": "VARCHAR",
    "tool": "VARCHAR",
    "args": "JSON",
    "attempt": "INTEGER",
    "attempts": "INTEGER",
    "output": "VARCHAR",
    "error": "VARCHAR",
    "transient": "BOOLEAN",
    "duration_ms": "DOUBLE",
    "key": "VARCHAR",
    "model": "VARCHAR",
    "purpose": "VARCHAR",
    "tokens_in": "BIGINT",
    "tokens_out": "BIGINT",
    "result": "VARCHAR",
    "verdict": "VARCHAR",
    "score": "DOUBLE",
    "observations": "BIGINT",
    "method": "VARCHAR",
    "tokens_before": "BIGINT",
    "tokens_after": "BIGINT",
    "budget": "BIGINT",
    "holder": "VARCHAR",
    "service": "VARCHAR",
    "command": "VARCHAR",
    "server": "VARCHAR",
    "tools": "JSON",
    "approval_id": "VARCHAR",
    "decision": "VARCHAR",
    "edited": "BOOLEAN",
    "original_args": "JSON",
    "due_at": "VARCHAR",
    "queued_ms": "DOUBLE",
    "called_at": "VARCHAR",
}
SUMMARY_DOC = "doc"


def _f(field: str) -> str:
    """The payload field ``field`` (one of ``SUMMARY_FIELDS``)."""
    return f"{SUMMARY_DOC}.{field}"


def _json_length(expr: str) -> str:
    return f"json_array_length({expr})"


def _or(expr: str, default: str) -> str:
    return f"coalesce({expr}, {default})"


_EMPTY = "''"


def _its_call(attempt: str) -> str:
    """SQL for ``events.summary._its_call``."""
    called = _f("called_at")
    return f"CASE WHEN {called} IS NULL THEN '' ELSE ' (attempt ' || {_text(attempt)} || ')' END"


def _because(expr: str) -> str:
    """SQL for ``events.summary._because``."""
    clipped = clip_sql(_or(expr, _EMPTY), 60)
    return f"CASE WHEN {clipped} = '' THEN '' ELSE ': ' || {clipped} END"


_DESCRIPTIONS: dict[str, str] = {
    "goal_accepted": f"'accepted: ' || {clip_sql(_f('text'), 60)}",
    "goal_rejected": f"'rejected: ' || {clip_sql(_f('reason'), REASON_WIDTH)}",
    "context_requested": (f"'asked memory for context (k=' || {_text(_or(_f('k'), '5'))} || ')'"),
    "context_provided": (
        f"{_text(_or(_json_length(_f('items')), '0'))} || ' memory item(s) provided'"
    ),
    "plan_created": (
        f"'plan #' || {_text(_f('iteration'))} || ' (' || {_f('strategy')} || '): ' || "
        f"array_to_string(list_transform({_f('tasks')}, lambda t: t.task_id || ':' || t.tool), "
        "', ')"
    ),
    "plan_revised": (
        f"'plan #' || {_text(_f('iteration'))} || ' revised after: ' || "
        f"{clip_sql(_f('feedback'), 60)}"
    ),
    "task_scheduled": (
        f"{_f('task_id')} || ' scheduled: ' || {_f('tool')} || ' ' || {clip_sql(_f('args'), 50)}"
    ),
    "task_started": f"{_f('task_id')} || ' started (attempt ' || {_text(_f('attempt'))} || ')'",
    "tool_called": (
        f"{_f('task_id')} || ' → ' || {_f('tool')} || '(' || {clip_sql(_f('args'), 50)} || "
        f"') attempt ' || {_text(_f('attempt'))}"
    ),
    "tool_returned": (
        f"{_f('task_id')} || ' ← ' || {clip_sql(_f('output'), 60)} || "
        f"' (' || printf('%.1f', {_f('duration_ms')}) || ' ms)'"
    ),
    "tool_failed": (
        f"{_f('task_id')} || ' ✗ ' || "
        f"CASE WHEN {_f('transient')} THEN 'transient' ELSE 'permanent' END || "
        f"': ' || {clip_sql(_f('error'), 60)} || {_its_call(_f('attempt'))}"
    ),
    "task_completed": (
        f"{_f('task_id')} || ' completed: ' || {clip_sql(_f('output'), 60)} || "
        f"{_its_call(_f('attempts'))}"
    ),
    "task_failed": (
        f"{_f('task_id')} || ' failed after ' || {_text(_f('attempts'))} || ' attempt(s): ' || "
        f"{clip_sql(_f('error'), 60)}"
    ),
    "memory_stored": f"'remembered ' || {_f('key')}",
    "memory_forgotten": (
        f"CASE WHEN {_or(_f('key'), _EMPTY)} = '' THEN 'forgot everything learned in this goal' "
        f"ELSE 'forgot ' || {_f('key')} END"
    ),
    "memory_compacted": (
        f"'compacted ' || {_text(_f('observations'))} || ' observation(s) (' || {_f('method')} || "
        f"'): ' || {_text(_f('tokens_before'))} || '→' || {_text(_f('tokens_after'))} || "
        f"' tokens, budget ' || {_text(_f('budget'))}"
    ),
    "lease_acquired": f"{_f('holder')} || ' became the active ' || {_f('service')}",
    "tools_listed": (
        f"'MCP server ' || {_f('server')} || ': ' || "
        f"{_text(_or(_json_length(_f('tools')), '0'))} || ' tool(s)'"
    ),
    "llm_requested": f"'asked ' || {_f('model')} || ' (' || {_f('purpose')} || ')'",
    "llm_responded": (
        f"{_f('model')} || ' answered (' || {_text(_or(_f('tokens_in'), '0'))} || '→' || "
        f"{_text(_or(_f('tokens_out'), '0'))} || ' tokens)'"
    ),
    "evaluation_requested": (
        f"'evaluate iteration ' || {_text(_f('iteration'))} || ': ' || {clip_sql(_f('result'), 50)}"
    ),
    "evaluation_completed": (
        f"{_f('verdict')} || ' (score ' || printf('%.2f', {_f('score')}) || '): ' || "
        f"{clip_sql(_f('feedback'), 60)}"
    ),
    "goal_completed": (
        f"'completed after ' || {_text(_f('iterations'))} || ' iteration(s): ' || "
        f"{clip_sql(_f('result'), 60)}"
    ),
    "goal_failed": (
        f"'failed after ' || {_text(_f('iterations'))} || ' iteration(s): ' || "
        f"{clip_sql(_f('reason'), 100)}"
    ),
    "cancel_requested": f"'cancel requested' || {_because(_f('reason'))}",
    "pause_requested": f"'pause requested' || {_because(_f('reason'))}",
    "resume_requested": f"'resume requested' || {_because(_f('reason'))}",
    "goal_cancelled": f"'cancelled' || {_because(_f('reason'))}",
    "goal_paused": f"'paused' || {_because(_f('reason'))}",
    "goal_resumed": f"'resumed' || {_because(_f('reason'))}",
    "goal_queued": f"'queued: ' || {clip_sql(_f('reason'), 100)}",
    "goal_dequeued": f"'dequeued after ' || printf('%.0f', {_f('queued_ms')}) || ' ms'",
    "command_rejected": (f"{_f('command')} || ' rejected: ' || {clip_sql(_f('reason'), 100)}"),
    "task_cancelled": (
        f"{_f('task_id')} || ' cancelled after ' || {_text(_f('attempts'))} || ' attempt(s)' || "
        f"{_because(_f('reason'))}"
    ),
    "approval_requested": (
        f"{_f('task_id')} || ' waits for approval: ' || {_f('tool')} || ' ' || "
        f"{clip_sql(_f('args'), 50)}"
    ),
    "approval_answered": (
        f"'answer ' || {_f('decision')} || ' for ' || {_f('approval_id')} || "
        f"{_because(_f('reason'))}"
    ),
    "approval_granted": (
        f"CASE WHEN {_f('edited')} THEN {_f('task_id')} || ' approved with edited args ' || "
        f"{clip_sql(_f('args'), 40)} || ' (asked: ' || {clip_sql(_f('original_args'), 40)} || ')' "
        f"ELSE {_f('task_id')} || ' approved: ' || {_f('tool')} || ' ' || "
        f"{clip_sql(_f('args'), 50)} END"
    ),
    "approval_denied": f"{_f('task_id')} || ' denied' || {_because(_f('reason'))}",
    "approval_rejected": f"'answer rejected: ' || {clip_sql(_f('reason'), 100)}",
    "message_received": f"'message: ' || {clip_sql(_f('text'), 60)}",
    "message_queued": (
        f"'message queued for after iteration ' || {_text(_f('iteration'))} || ': ' || "
        f"{clip_sql(_f('text'), 60)}"
    ),
    "iteration_interrupted": (
        f"'iteration ' || {_text(_f('iteration'))} || ' interrupted by a message: ' || "
        f"{clip_sql(_f('text'), 60)}"
    ),
    "message_rejected": f"'message rejected: ' || {clip_sql(_f('reason'), 100)}",
    "timer_started": (
        f"{_f('task_id')} || CASE WHEN {_f('purpose')} = 'retry' "
        f"THEN ' backs off until ' || {_f('due_at')} || ', then attempt ' "
        f"|| {_text(_f('attempt'))} "
        f"ELSE ' waits on a durable timer until ' || {_f('due_at')} END"
    ),
    "timer_fired": f"{_f('task_id')} || ' woken by its timer'",
    "tool_refused": (
        f"{_f('task_id')} || ' ⊘ ' || {_f('tool')} || ' refused: ' || {clip_sql(_f('reason'), 60)}"
    ),
}

_CASES = "\n".join(f"        WHEN '{tag}' THEN {sql}" for tag, sql in _DESCRIPTIONS.items())

# A type this code does not know (or an event missing a field the line needs) shows its type,
# as ``summarize`` does for unknown event classes.
_DESCRIBE = f"CASE type\n{_CASES}\n        ELSE type\n    END"
SUMMARY_SQL = f"coalesce({cut_sql(_DESCRIBE, 120)}, type)"
