"""Every read model derived from a batch of raw events with set-based SQL, no Python per event.

``ProjectionStore.apply_raw`` registers the batch as the Arrow table ``_raw_batch``
(``stream_seq BIGINT, payload BLOB``) and, in one transaction, with ``$last_seq`` the checkpoint
before the batch (so ``stream_seq > $last_seq`` is exactly the batch's new events):

1. ``PARSE_BATCH`` decodes and parses each new payload ONCE into the fields some table needs
   (NULL where an event type has no such field). Its result is fetched as Arrow and registered
   as ``_batch``: JSON parsing dominates, and a DuckDB temporary table to hold the parsed
   fields cost more than the parsing itself (Arrow, in vector-sized record batches, costs a
   fraction and is read back on every core).
2. One statement per table, each a pure function of ``_batch`` and the table's current rows,
   each reading only the columns and event types it needs: ``WRITE_EVENTS``, ``UPSERT_GOALS``,
   ``UPSERT_TASKS``, ``INSERT_FACTS``, and ``WRITE_UNDECODABLE`` only when the batch held
   payloads that are not events. Upserts first aggregate the batch per key (latest non-NULL
   value by stream order, ``max`` for counters, earliest for start times), because DuckDB
   cannot update one row twice in a statement, then merge with the stored row by the same
   rules.

The trajectory's human-readable ``summary`` is not written here at all: the ``trajectory``
view works it out from the stored payload when it is read (``projections.schema``).
"""

# ruff: noqa: S608  every statement is assembled from this module's constants, never from input

from __future__ import annotations

import json

# What memory keeps of a task's output as its observation (services/memory/decide.py).
MAX_OBSERVATION_CHARS = 2000

__all__ = [
    "BATCH_TABLE",
    "DERIVATIONS",
    "INSERT_FACTS",
    "PARSE_BATCH",
    "RAW_BATCH",
    "READS_ONLY",
    "SYNC_WAITING_GOALS",
    "UPSERT_APPROVALS",
    "UPSERT_GOALS",
    "UPSERT_MESSAGES",
    "UPSERT_TASKS",
    "WRITE_EVENTS",
    "WRITE_UNDECODABLE",
]

RAW_BATCH = "_raw_batch"
BATCH_TABLE = "_batch"

# Every field of any event type that some table stores, with its SQL type. Fields an event
# lacks, or holds with an unusable type, parse as NULL. ``type`` and ``goal_id`` stay JSON so
# that a non-string value can be told apart from a string (and the event refused).
_FIELDS: dict[str, object] = {
    "type": "JSON",
    "goal_id": "JSON",
    "event_id": "VARCHAR",
    "occurred_at": "VARCHAR",
    "producer": "VARCHAR",
    "command_id": "VARCHAR",
    "text": "VARCHAR",
    "reason": "VARCHAR",
    "metadata": "JSON",
    "max_iterations": "INTEGER",
    "iteration": "INTEGER",
    "iterations": "INTEGER",
    "score": "DOUBLE",
    "result": "VARCHAR",
    "task_id": "VARCHAR",
    "description": "VARCHAR",
    "tool": "VARCHAR",
    "args": "JSON",
    "max_attempts": "INTEGER",
    "attempt": "INTEGER",
    "attempts": "INTEGER",
    "output": "VARCHAR",
    "error": "VARCHAR",
    "duration_ms": "DOUBLE",
    "attempt_duration_ms": "DOUBLE",
    "key": "VARCHAR",
    "kind": "VARCHAR",
    "source_event_id": "VARCHAR",
    "importance": "DOUBLE",
    "tokens_in": "BIGINT",
    "tokens_out": "BIGINT",
    "cost_usd": "DOUBLE",
    "latency_ms": "DOUBLE",
}

_ENVELOPE_SPECIAL = {"type", "goal_id", "occurred_at"}
_PLAIN_FIELDS = ",\n       ".join(
    f"doc.{name} AS {name}" for name in _FIELDS if name not in _ENVELOPE_SPECIAL
)

# ``try`` turns undecodable bytes or malformed JSON into NULL instead of failing the batch; a
# document that is valid JSON but not an object parses to all-NULL fields, so it fails the
# string checks below.
PARSE_BATCH = f"""
WITH parsed AS (
    SELECT stream_seq, json_text, try(json_transform(json_text, '{json.dumps(_FIELDS)}')) AS doc
    FROM (
        SELECT stream_seq, try(decode(payload)) AS json_text
        FROM {RAW_BATCH}
        WHERE stream_seq > $last_seq
    )
)
SELECT stream_seq, json_text,
       coalesce(json_type(doc.type) = 'VARCHAR' AND json_type(doc.goal_id) = 'VARCHAR', false)
           AS decodable,
       json_extract_string(doc.type, '$') AS type,
       json_extract_string(doc.goal_id, '$') AS goal_id,
       -- In UTC. agora writes 'Z' (the fast path); another offset is converted, a time
       -- without one is taken as UTC, and an unreadable one is NULL.
       CASE
           WHEN ends_with(doc.occurred_at, 'Z') THEN try_cast(doc.occurred_at AS TIMESTAMP)
           WHEN regexp_matches(doc.occurred_at, '\\d:\\d\\d(\\.\\d*)?[+-]\\d\\d(:?\\d\\d)?$')
               THEN timezone('UTC', try_cast(doc.occurred_at AS TIMESTAMPTZ))
           ELSE try_cast(doc.occurred_at AS TIMESTAMP)
       END AS occurred_at,
       {_PLAIN_FIELDS}
FROM parsed"""

# Run only when the batch held refused payloads; their bytes are looked up again in the raw
# batch rather than carried through ``_batch`` for every event.
WRITE_UNDECODABLE = f"""
INSERT INTO undecodable_events (stream_seq, payload, error)
SELECT stream_seq, raw.payload,
       CASE
           WHEN json_text IS NULL THEN 'payload is not valid UTF-8'
           WHEN NOT json_valid(json_text) THEN 'payload is not valid JSON'
           WHEN json_type(json_text) <> 'OBJECT' THEN 'payload is not a JSON object'
           ELSE 'payload has no string "type" and "goal_id"'
       END
FROM {BATCH_TABLE} JOIN {RAW_BATCH} AS raw USING (stream_seq)
WHERE NOT decodable"""

_TASK_TYPES = (
    "'task_scheduled', 'task_started', 'tool_called', 'tool_returned', 'tool_failed', "
    "'task_completed', 'task_failed', 'task_cancelled', 'timer_started', 'timer_fired'"
)
_TASK_ENDS = "'task_completed', 'task_failed', 'task_cancelled'"
_APPROVAL_EVENTS = frozenset({"approval_requested", "approval_granted", "approval_denied"})
_APPROVAL_TYPES = ", ".join(f"'{name}'" for name in sorted(_APPROVAL_EVENTS))
_APPROVAL_ANSWERS = "'approval_granted', 'approval_denied'"

# The payload is the text received, byte for byte; the analytics columns are NULL where they
# do not apply (duration of tool and task outcomes, latency and tokens of LLM answers).
# ``call_ms`` is the duration of the tool call an event ends: a tool_returned or tool_failed,
# or a plain task's task_completed, which is its successful call's return too.
WRITE_EVENTS = f"""
INSERT INTO events (stream_seq, event_id, goal_id, type, occurred_at, payload, producer,
                    duration_ms, tokens_in, tokens_out, cost_usd, tool, call_ms)
SELECT stream_seq, event_id, goal_id, type, occurred_at, json_text, producer,
       CASE
           WHEN type IN ('tool_returned', 'tool_failed', {_TASK_ENDS}) THEN duration_ms
           WHEN type = 'llm_responded' THEN coalesce(latency_ms, 0)
       END,
       CASE WHEN type = 'llm_responded' THEN coalesce(tokens_in, 0) END,
       CASE WHEN type = 'llm_responded' THEN coalesce(tokens_out, 0) END,
       CASE WHEN type = 'llm_responded' THEN coalesce(cost_usd, 0) END,
       CASE WHEN type IN ({_TASK_TYPES}) THEN tool END,
       CASE
           WHEN type IN ('tool_returned', 'tool_failed') THEN duration_ms
           WHEN type = 'task_completed' THEN attempt_duration_ms
       END
FROM {BATCH_TABLE}
WHERE decodable"""

# Goal ids starting with "_" belong to the platform (leases, unattributed memory): they are in
# ``events`` only, never in the views that list goals.
_A_GOAL = "NOT starts_with(goal_id, '_')"


def _latest(column: str) -> str:
    """The batch's last non-NULL value of ``column``, in stream order."""
    return f"arg_max({column}, stream_seq) FILTER (WHERE {column} IS NOT NULL) AS {column}"


def _first(column: str) -> str:
    return f"arg_min({column}, stream_seq) FILTER (WHERE {column} IS NOT NULL) AS {column}"


def _merge_latest(*columns: str) -> str:
    return ",\n    ".join(f"{c} = coalesce(excluded.{c}, t.{c})" for c in columns)


# The events that end a goal (a finished goal's status never changes again: the planner
# decides nothing after them, and a task that completes later changes no goal column).
_GOAL_ENDS = "'goal_rejected', 'goal_completed', 'goal_failed', 'goal_cancelled'"

# Every event touches its goal (``last_seq``); lifecycle events set its status, plans and
# outcomes its iteration (the highest wins), evaluations and outcomes its score. A goal that
# has not ended is ``paused`` while a pause holds it (``goal_paused`` until ``goal_resumed``),
# else ``queued`` while it waits for a flow slot (``goal_queued`` until ``goal_dequeued``), else
# ``running``: the two flags are kept apart, since a queued goal can be paused and resumed
# before its turn, and its turn can come while it is paused.
_HELD = "('running', 'queued', 'paused')"


def _held_status(status: str, paused: str, queued: str) -> str:
    """``status``, or for a goal that has not ended, what its pause and queue flags make it."""
    return f"""CASE WHEN {status} IN {_HELD} THEN
               CASE WHEN coalesce({paused}, false) THEN 'paused'
                    WHEN coalesce({queued}, false) THEN 'queued'
                    ELSE 'running' END
           ELSE {status} END"""


UPSERT_GOALS = f"""
INSERT INTO goals AS t (goal_id, text, status, submitted_at, finished_at, iterations, score,
                        result, command_id, reason, metadata, max_iterations, paused, queued,
                        last_seq)
WITH changes AS (
    SELECT goal_id, stream_seq,
           CASE type WHEN 'goal_accepted' THEN text
                     WHEN 'goal_rejected' THEN nullif(text, '') END AS text,
           CASE type WHEN 'goal_accepted' THEN 'running'
                     WHEN 'goal_rejected' THEN 'rejected'
                     WHEN 'goal_completed' THEN 'completed'
                     WHEN 'goal_failed' THEN 'failed'
                     WHEN 'goal_cancelled' THEN 'cancelled'
                     WHEN 'goal_paused' THEN 'paused'
                     WHEN 'goal_resumed' THEN 'running'
                     WHEN 'goal_queued' THEN 'queued'
                     WHEN 'goal_dequeued' THEN 'running' END AS status,
           CASE type WHEN 'goal_paused' THEN true WHEN 'goal_resumed' THEN false END AS paused,
           CASE type WHEN 'goal_queued' THEN true WHEN 'goal_dequeued' THEN false END AS queued,
           CASE WHEN type IN ('goal_accepted', 'goal_rejected') THEN occurred_at END
               AS submitted_at,
           CASE WHEN type IN ({_GOAL_ENDS}) THEN occurred_at END AS finished_at,
           CASE WHEN type IN ('plan_created', 'plan_revised') THEN iteration
                WHEN type IN ('goal_completed', 'goal_failed', 'goal_cancelled') THEN iterations
           END AS iterations,
           CASE WHEN type IN ('evaluation_completed', 'goal_completed', 'goal_failed') THEN score
           END AS score,
           CASE WHEN type = 'goal_completed' THEN result END AS result,
           CASE WHEN type IN ('goal_accepted', 'goal_rejected') THEN command_id END
               AS command_id,
           CASE WHEN type IN ('goal_rejected', 'goal_failed', 'goal_cancelled') THEN reason
           END AS reason,
           CASE WHEN type = 'goal_accepted' THEN coalesce(metadata, '{{}}') END AS metadata,
           CASE WHEN type = 'goal_accepted' THEN coalesce(max_iterations, 3) END
               AS max_iterations
    FROM {BATCH_TABLE}
    WHERE decodable AND {_A_GOAL}
)
SELECT goal_id, text, {_held_status("status", "paused", "queued")} AS status, submitted_at,
       finished_at, iterations, score, result, command_id, reason, metadata, max_iterations,
       paused, queued, last_seq
FROM (
    SELECT goal_id,
           {_latest("text")}, {_latest("status")}, {_first("submitted_at")},
           {_latest("finished_at")}, max(iterations) AS iterations, {_latest("score")},
           {_latest("result")}, {_latest("command_id")}, {_latest("reason")},
           {_latest("metadata")}, {_latest("max_iterations")}, {_latest("paused")},
           {_latest("queued")}, max(stream_seq) AS last_seq
    FROM changes
    GROUP BY goal_id
)
ON CONFLICT (goal_id) DO UPDATE SET
    status = {
    _held_status(
        "coalesce(excluded.status, t.status)",
        "coalesce(excluded.paused, t.paused)",
        "coalesce(excluded.queued, t.queued)",
    )
},
    {
    _merge_latest(
        "text",
        "paused",
        "queued",
        "finished_at",
        "score",
        "result",
        "command_id",
        "reason",
        "metadata",
        "max_iterations",
    )
},
    submitted_at = coalesce(t.submitted_at, excluded.submitted_at),
    iterations = greatest(t.iterations, excluded.iterations),
    last_seq = greatest(t.last_seq, excluded.last_seq)"""

# Tool outcomes reach a task through task_completed / task_failed; tool_called counts attempts,
# and so does an outcome that is its call's whole record (``called_at`` set: an instant tool
# without side effects writes no tool_called), which also says when the call began.
# A task's tool comes from the task events only: a ReAct task's tool events name the tools it
# called, not the task's own tool ("react").
UPSERT_TASKS = f"""
INSERT INTO tasks AS t (goal_id, task_id, iteration, description, tool, status, attempts,
                        started_at, finished_at, output, error, duration_ms, args,
                        max_attempts, last_seq)
WITH changes AS (
    SELECT goal_id, task_id, iteration, stream_seq,
           CASE WHEN type IN ('task_scheduled', 'task_started', {_TASK_ENDS}, {_APPROVAL_TYPES})
               THEN tool END AS tool,
           CASE WHEN type = 'task_scheduled' THEN description END AS description,
           CASE type WHEN 'task_scheduled' THEN 'scheduled'
                     WHEN 'task_started' THEN 'running'
                     WHEN 'tool_called' THEN 'running'
                     WHEN 'tool_failed' THEN 'running'
                     WHEN 'timer_started' THEN 'waiting'
                     -- a plain task's outcome is written right after it; a ReAct task thinks on
                     WHEN 'timer_fired' THEN 'running'
                     WHEN 'task_completed' THEN 'completed'
                     WHEN 'task_failed' THEN 'failed'
                     WHEN 'task_cancelled' THEN 'cancelled'
                     WHEN 'approval_requested' THEN 'waiting_approval'
                     WHEN 'approval_granted' THEN 'approved'
                     WHEN 'approval_denied' THEN 'failed' END AS status,
           CASE WHEN type IN ('tool_called', 'tool_failed') THEN attempt
                WHEN type IN ({_TASK_ENDS}) THEN attempts END AS attempts,
           -- A plain task starts with its first tool_called (older logs: task_started), or
           -- with the first call its outcome records.
           CASE WHEN type IN ('task_started', 'tool_called') THEN occurred_at
                WHEN type IN ('task_completed', 'tool_failed')
                    THEN try_cast(json_text->>'called_at' AS TIMESTAMP) END
               AS started_at,
           CASE WHEN type IN ({_TASK_ENDS}, 'approval_denied') THEN occurred_at END
               AS finished_at,
           CASE WHEN type = 'task_completed' THEN output END AS output,
           CASE WHEN type = 'task_failed' THEN error
                WHEN type = 'task_cancelled' THEN coalesce(nullif(reason, ''), 'cancelled')
                WHEN type = 'approval_denied' THEN 'approval denied: ' || reason
           END AS error,
           CASE WHEN type IN ({_TASK_ENDS}) THEN duration_ms END AS duration_ms,
           CASE WHEN type IN ('task_scheduled', 'approval_requested') THEN args END AS args,
           CASE WHEN type = 'task_scheduled' THEN max_attempts END AS max_attempts
    FROM {BATCH_TABLE}
    WHERE decodable AND {_A_GOAL} AND task_id IS NOT NULL AND iteration IS NOT NULL
      AND (type IN ({_TASK_TYPES})
           -- a ReAct step's call waits inside its running task: not the task's own status
           OR type IN ({_APPROVAL_TYPES}) AND coalesce(json_text->>'step', '0') = '0')
)
SELECT goal_id, task_id, iteration,
       {_latest("description")}, {_latest("tool")}, {_latest("status")},
       max(attempts) AS attempts, {_first("started_at")}, {_latest("finished_at")},
       {_latest("output")}, {_latest("error")}, {_latest("duration_ms")}, {_latest("args")},
       {_latest("max_attempts")}, max(stream_seq) AS last_seq
FROM changes
GROUP BY goal_id, task_id, iteration
ON CONFLICT (goal_id, iteration, task_id) DO UPDATE SET
    {
    _merge_latest(
        "description",
        "tool",
        "status",
        "finished_at",
        "output",
        "error",
        "duration_ms",
        "args",
        "max_attempts",
    )
},
    attempts = greatest(t.attempts, excluded.attempts),
    started_at = coalesce(t.started_at, excluded.started_at),
    last_seq = greatest(t.last_seq, excluded.last_seq)"""

# A fact is recorded once per key, the first for a key winning. A completed task is an
# observation of its own (the key and text memory gives it); an older log's memory_stored
# observation of that task replaces the row derived from the task, as it did then.
INSERT_FACTS = f"""
INSERT INTO facts AS t (goal_id, key, value, source_event_id, recorded_at, kind, importance,
                        event_id)
WITH observed AS (
    SELECT goal_id, key, text AS value, source_event_id, occurred_at AS recorded_at,
           coalesce(kind, 'observation') AS kind, coalesce(importance, 0.5) AS importance,
           event_id, stream_seq, 0 AS derived
    FROM {BATCH_TABLE}
    WHERE decodable AND type = 'memory_stored' AND key IS NOT NULL AND {_A_GOAL}
    UNION ALL
    SELECT goal_id, goal_id || '/' || iteration || '/' || task_id,
           tool || ' -> ' || left(coalesce(output, ''), {MAX_OBSERVATION_CHARS}), event_id,
           occurred_at, 'observation', 0.5, event_id, stream_seq, 1
    FROM {BATCH_TABLE}
    WHERE decodable AND type = 'task_completed' AND task_id IS NOT NULL
      AND iteration IS NOT NULL AND {_A_GOAL}
)
SELECT goal_id, key, value, source_event_id, recorded_at, kind, importance, event_id
FROM observed
QUALIFY row_number() OVER (PARTITION BY key ORDER BY derived, stream_seq) = 1
ON CONFLICT (key) DO UPDATE SET
    value = excluded.value,
    recorded_at = excluded.recorded_at,
    kind = excluded.kind,
    importance = excluded.importance,
    event_id = excluded.event_id
WHERE t.event_id = t.source_event_id AND excluded.event_id <> excluded.source_event_id
  AND excluded.source_event_id = t.source_event_id"""

# One row per approval request: asked (waiting), then granted or denied by its one answer.
# Fields only approval events carry are read from their own JSON text, so no other event
# pays for parsing them.
UPSERT_APPROVALS = f"""
INSERT INTO approvals AS t (approval_id, goal_id, iteration, task_id, tool, args, reason,
                            answerers, status, requested_at, deadline, answered_at,
                            answered_by, answer_reason, granted_args, edited, last_seq)
WITH changes AS (
    SELECT json_text->>'approval_id' AS approval_id, goal_id, stream_seq,
           CASE WHEN type = 'approval_requested' THEN iteration END AS iteration,
           CASE WHEN type = 'approval_requested' THEN task_id END AS task_id,
           CASE WHEN type = 'approval_requested' THEN tool END AS tool,
           CASE WHEN type = 'approval_requested' THEN args END AS args,
           CASE WHEN type = 'approval_requested' THEN reason END AS reason,
           CASE WHEN type = 'approval_requested' THEN CAST(json_text->'answerers' AS JSON) END
               AS answerers,
           CASE type WHEN 'approval_requested' THEN 'waiting'
                     WHEN 'approval_granted' THEN 'granted'
                     WHEN 'approval_denied' THEN 'denied' END AS status,
           CASE WHEN type = 'approval_requested' THEN occurred_at END AS requested_at,
           CASE WHEN type = 'approval_requested'
                THEN try_cast(json_text->>'deadline' AS TIMESTAMP) END AS deadline,
           CASE WHEN type IN ({_APPROVAL_ANSWERS}) THEN occurred_at END AS answered_at,
           CASE WHEN type IN ({_APPROVAL_ANSWERS}) THEN json_text->>'by' END AS answered_by,
           CASE WHEN type IN ({_APPROVAL_ANSWERS}) THEN reason END AS answer_reason,
           CASE WHEN type = 'approval_granted' THEN args END AS granted_args,
           CASE WHEN type = 'approval_granted'
                THEN try_cast(json_text->>'edited' AS BOOLEAN) END AS edited
    FROM {BATCH_TABLE}
    WHERE decodable AND type IN ({_APPROVAL_TYPES}) AND {_A_GOAL}
)
SELECT approval_id, any_value(goal_id) AS goal_id,
       {_latest("iteration")}, {_latest("task_id")}, {_latest("tool")}, {_latest("args")},
       {_latest("reason")}, {_latest("answerers")}, {_latest("status")},
       {_first("requested_at")}, {_latest("deadline")}, {_first("answered_at")},
       {_latest("answered_by")}, {_latest("answer_reason")}, {_latest("granted_args")},
       {_latest("edited")}, max(stream_seq) AS last_seq
FROM changes
WHERE approval_id IS NOT NULL
GROUP BY approval_id
ON CONFLICT (approval_id) DO UPDATE SET
    {
    _merge_latest(
        "iteration",
        "task_id",
        "tool",
        "args",
        "reason",
        "answerers",
        "status",
        "deadline",
        "answered_by",
        "answer_reason",
        "granted_args",
        "edited",
    )
},
    requested_at = coalesce(t.requested_at, excluded.requested_at),
    answered_at = coalesce(t.answered_at, excluded.answered_at),
    last_seq = greatest(t.last_seq, excluded.last_seq)"""

_MESSAGE_ANSWERS = frozenset({"message_queued", "iteration_interrupted", "message_rejected"})
_MESSAGE_EVENTS = _MESSAGE_ANSWERS | {"message_received"}
_MESSAGE_TYPES = ", ".join(f"'{name}'" for name in sorted(_MESSAGE_EVENTS))
_MESSAGE_ANSWER_TYPES = ", ".join(f"'{name}'" for name in sorted(_MESSAGE_ANSWERS))

# One row per message for a running goal: received, then queued, interrupted or rejected, then
# applied by the plan_revised that names it in ``messages``.
UPSERT_MESSAGES = f"""
INSERT INTO messages AS t (goal_id, command_id, text, status, iteration, applied_iteration,
                           received_at, answered_at, reason, last_seq)
WITH changes AS (
    SELECT goal_id, command_id, stream_seq,
           CASE WHEN type <> 'message_rejected' THEN text END AS text,
           CASE type WHEN 'message_received' THEN 'received'
                     WHEN 'message_queued' THEN 'queued'
                     WHEN 'iteration_interrupted' THEN 'interrupted'
                     WHEN 'message_rejected' THEN 'rejected' END AS status,
           CASE WHEN type IN ('message_queued', 'iteration_interrupted') THEN iteration END
               AS iteration,
           CAST(NULL AS INTEGER) AS applied_iteration,
           CASE WHEN type = 'message_received' THEN occurred_at END AS received_at,
           CASE WHEN type IN ({_MESSAGE_ANSWER_TYPES}) THEN occurred_at END AS answered_at,
           CASE WHEN type = 'message_rejected' THEN reason END AS reason
    FROM {BATCH_TABLE}
    WHERE decodable AND type IN ({_MESSAGE_TYPES}) AND {_A_GOAL} AND command_id IS NOT NULL
    UNION ALL
    SELECT goal_id, unnest(CAST(json_text->'messages' AS VARCHAR[])) AS command_id, stream_seq,
           NULL, 'applied', NULL, iteration, NULL, NULL, NULL
    FROM {BATCH_TABLE}
    WHERE decodable AND type = 'plan_revised' AND {_A_GOAL}
      AND coalesce(json_array_length(json_text->'messages'), 0) > 0
)
SELECT goal_id, command_id, {_latest("text")}, {_latest("status")}, {_latest("iteration")},
       {_latest("applied_iteration")}, {_first("received_at")}, {_first("answered_at")},
       {_latest("reason")}, max(stream_seq) AS last_seq
FROM changes
GROUP BY goal_id, command_id
ON CONFLICT (goal_id, command_id) DO UPDATE SET
    {_merge_latest("text", "status", "iteration", "applied_iteration", "reason")},
    received_at = coalesce(t.received_at, excluded.received_at),
    answered_at = coalesce(t.answered_at, excluded.answered_at),
    last_seq = greatest(t.last_seq, excluded.last_seq)"""

# A goal that runs shows ``waiting_approval`` while any of its approvals waits; run after the
# goals and approvals of the batch are written, for the goals whose approvals moved (a resume
# makes a goal ``running`` again, and it may still wait).
SYNC_WAITING_GOALS = f"""
UPDATE goals AS g
SET status = CASE WHEN EXISTS (
        SELECT 1 FROM approvals AS a WHERE a.goal_id = g.goal_id AND a.status = 'waiting'
    ) THEN 'waiting_approval' ELSE 'running' END
WHERE g.status IN ('running', 'waiting_approval')
  AND g.goal_id IN (
      SELECT goal_id FROM {BATCH_TABLE}
      WHERE decodable AND type IN ({_APPROVAL_TYPES}, 'goal_resumed')
  )"""

# Run in this order after WRITE_EVENTS (and WRITE_UNDECODABLE), in the batch's transaction.
DERIVATIONS: dict[str, str] = {
    "goals": UPSERT_GOALS,
    "tasks": UPSERT_TASKS,
    "facts": INSERT_FACTS,
    "approvals": UPSERT_APPROVALS,
    "waiting goals": SYNC_WAITING_GOALS,
    "messages": UPSERT_MESSAGES,
}

# Derivations that read only some event types: skipped for a batch holding none of them (a
# statement costs DuckDB a few hundred microseconds even when it matches no row).
READS_ONLY: dict[str, frozenset[str]] = {
    "approvals": _APPROVAL_EVENTS,
    "waiting goals": _APPROVAL_EVENTS | {"goal_resumed"},
    "messages": _MESSAGE_EVENTS | {"plan_revised"},
}
