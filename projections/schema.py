"""The DuckDB read models: base tables, the views users query, and the checkpoint.

Users query the views and tables by name; columns may be added, never removed or renamed
(bump ``SCHEMA_VERSION`` when the layout changes: a store with another version is emptied and
rebuilt from the event stream, projections being derived data).

``events`` is the one big table and only ever appends, so it has no primary key: an index
would cost more per row than everything else together, and a replayed batch is made harmless
by the checkpoint instead (``ProjectionStore.apply_raw`` skips sequences it already holds).
It carries what analytics aggregate over many rows (durations, tokens, cost, tool), so
``tool_stats`` never parses a payload; ``trajectory`` is a view over it that works out each
step's human-readable ``summary`` from the stored payload at query time (a filter on
``goal_id`` reaches the table scan, so one goal's trajectory parses only that goal's events).
The payload is stored as ``VARCHAR``: every stored payload parsed as a JSON object on the way
in, and DuckDB's JSON functions and operators (``payload->>'text'``) read ``VARCHAR`` as JSON,
so a ``JSON`` column would only add a second validating parse of every payload per batch.
``goals``, ``tasks`` and ``facts`` hold one row per key and keep their keys for upserts.

All timestamps are ``TIMESTAMP`` holding UTC: ``TIMESTAMPTZ`` would make results depend on
the session time zone and need ``pytz`` to fetch into Python.
"""

# ruff: noqa: S608  the views are assembled from this package's constants, never from input

from __future__ import annotations

import json

from projections.summary_sql import SUMMARY_DOC, SUMMARY_FIELDS, SUMMARY_SQL

__all__ = [
    "CHECKPOINT_TABLE",
    "CHECKSUM_VIEWS",
    "DDL",
    "SCHEMA_VERSION",
    "TABLES",
    "USER_VIEWS",
    "VIEWS",
]

SCHEMA_VERSION = 7

CHECKPOINT_TABLE = "projection_checkpoint"

TABLES: dict[str, str] = {
    # The raw log plus what the trajectory shows of each event (NULL where it does not apply).
    "events": """
CREATE TABLE IF NOT EXISTS events (
    stream_seq BIGINT NOT NULL,
    event_id VARCHAR,
    goal_id VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    occurred_at TIMESTAMP,
    -- The JSON text received, byte for byte. zstd: JSON repeats itself across events, so it
    -- compresses to a quarter of what DuckDB's default (dictionary + FSST) achieves, and
    -- checkpoints compress it in half the time.
    payload VARCHAR USING COMPRESSION zstd,
    producer VARCHAR,
    duration_ms DOUBLE,
    tokens_in BIGINT,
    tokens_out BIGINT,
    cost_usd DOUBLE,
    tool VARCHAR,
    call_ms DOUBLE               -- the tool call this event ends (returned, failed, completed)
)""",
    "goals": """
CREATE TABLE IF NOT EXISTS goals (
    goal_id VARCHAR PRIMARY KEY,
    text VARCHAR,
    -- queued | running | waiting_approval | paused | rejected | completed | failed | cancelled
    status VARCHAR,
    submitted_at TIMESTAMP,
    finished_at TIMESTAMP,
    iterations INTEGER,          -- the current iteration while running
    score DOUBLE,
    result VARCHAR,
    command_id VARCHAR,
    reason VARCHAR,              -- why it was rejected, failed or cancelled
    metadata JSON,
    max_iterations INTEGER,
    paused BOOLEAN,              -- a pause holds it (goal_paused, not yet goal_resumed)
    queued BOOLEAN,              -- it waits for a flow slot (goal_queued, not yet goal_dequeued)
    last_seq BIGINT NOT NULL     -- stream sequence of the goal's latest event
)""",
    "tasks": """
CREATE TABLE IF NOT EXISTS tasks (
    goal_id VARCHAR NOT NULL,
    task_id VARCHAR NOT NULL,
    iteration INTEGER NOT NULL,
    description VARCHAR,
    tool VARCHAR,
    -- waiting_approval | approved | scheduled | running | completed | failed | cancelled
    status VARCHAR,
    attempts INTEGER,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    output VARCHAR,
    error VARCHAR,
    duration_ms DOUBLE,
    args JSON,
    max_attempts INTEGER,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (goal_id, iteration, task_id)
)""",
    "facts": """
CREATE TABLE IF NOT EXISTS facts (
    goal_id VARCHAR NOT NULL,
    key VARCHAR PRIMARY KEY,
    value VARCHAR,
    source_event_id VARCHAR,
    recorded_at TIMESTAMP,
    kind VARCHAR,
    importance DOUBLE,
    event_id VARCHAR             -- the event it was recorded from (memory_stored, task_completed)
)""",
    # Every approval request, and how it was answered (docs/approvals.md).
    "approvals": """
CREATE TABLE IF NOT EXISTS approvals (
    approval_id VARCHAR PRIMARY KEY,
    goal_id VARCHAR NOT NULL,
    iteration INTEGER,
    task_id VARCHAR,
    tool VARCHAR,
    args JSON,                   -- the call as it was asked for
    reason VARCHAR,              -- why the policy wants a person's approval
    answerers JSON,              -- who may answer (empty: whoever may publish answers)
    status VARCHAR,              -- waiting | granted | denied
    requested_at TIMESTAMP,
    deadline TIMESTAMP,          -- no answer by then: denied
    answered_at TIMESTAMP,
    answered_by VARCHAR,         -- an answer's "by"; _deadline when the deadline denied it
    answer_reason VARCHAR,
    granted_args JSON,           -- what runs: the request's arguments, or the person's edit
    edited BOOLEAN,
    last_seq BIGINT NOT NULL
)""",
    # Every message sent to a goal while it ran, and what became of it (docs/events.md).
    "messages": """
CREATE TABLE IF NOT EXISTS messages (
    goal_id VARCHAR NOT NULL,
    command_id VARCHAR NOT NULL,
    text VARCHAR,
    status VARCHAR,              -- received | queued | interrupted | applied | rejected
    iteration INTEGER,           -- the iteration it came in (queued after, or interrupted)
    applied_iteration INTEGER,   -- the iteration whose plan took it in
    received_at TIMESTAMP,
    answered_at TIMESTAMP,
    reason VARCHAR,              -- why it was rejected
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (goal_id, command_id)
)""",
    # Payloads that are not events at all: kept, with the reason, instead of failing a batch.
    "undecodable_events": """
CREATE TABLE IF NOT EXISTS undecodable_events (
    stream_seq BIGINT NOT NULL,
    payload BLOB,
    error VARCHAR
)""",
    CHECKPOINT_TABLE: f"""
CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (
    id INTEGER PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    schema_version INTEGER NOT NULL
)""",
}

VIEWS: dict[str, str] = {
    # step is derived at query time, so a late batch never renumbers stored rows; so is the
    # summary, which only a human reads (stored payloads are valid JSON: ``try`` only guards
    # the query against a future DuckDB being stricter about a field's type).
    "trajectory": f"""
CREATE OR REPLACE VIEW trajectory AS
SELECT goal_id,
       row_number() OVER (PARTITION BY goal_id ORDER BY stream_seq) AS step,
       stream_seq, occurred_at, type,
       split_part(producer, '@', 1) AS actor,
       {SUMMARY_SQL} AS summary,
       duration_ms, tokens_in, tokens_out, cost_usd, event_id, tool
FROM (
    SELECT *, try(json_transform(payload, '{json.dumps(SUMMARY_FIELDS)}')) AS {SUMMARY_DOC}
    FROM events
    WHERE NOT starts_with(goal_id, '_')  -- the platform's own (leases), not goals
)""",
    "tool_stats": """
CREATE OR REPLACE VIEW tool_stats AS
SELECT tool,
       count(*) AS calls,
       count(*) FILTER (WHERE type = 'tool_failed') AS failures,
       quantile_cont(call_ms, 0.5) AS p50_ms,
       quantile_cont(call_ms, 0.95) AS p95_ms
FROM events
WHERE call_ms IS NOT NULL
GROUP BY tool""",
    # Durations exist only for finished goals; quantiles skip the NULLs of running ones.
    "goal_stats": """
CREATE OR REPLACE VIEW goal_stats AS
WITH usage AS (
    SELECT goal_id, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
           sum(cost_usd) AS cost_usd
    FROM events WHERE type = 'llm_responded' GROUP BY goal_id
)
SELECT CAST(g.submitted_at AS DATE) AS day,
       g.status,
       count(*) AS goals,
       avg(g.iterations) AS avg_iterations,
       quantile_cont((epoch_us(g.finished_at) - epoch_us(g.submitted_at)) / 1000.0, 0.5)
           AS p50_duration_ms,
       quantile_cont((epoch_us(g.finished_at) - epoch_us(g.submitted_at)) / 1000.0, 0.95)
           AS p95_duration_ms,
       CAST(coalesce(sum(u.tokens_in), 0) AS BIGINT) AS tokens_in,
       CAST(coalesce(sum(u.tokens_out), 0) AS BIGINT) AS tokens_out,
       coalesce(sum(u.cost_usd), 0.0) AS cost_usd
FROM goals g LEFT JOIN usage u USING (goal_id)
WHERE g.submitted_at IS NOT NULL
GROUP BY ALL""",
}

# What users query by name (the documented views plus the analytics ones): what `agora export`
# writes and what agora's MCP server describes as resources.
USER_VIEWS = (
    "goals",
    "tasks",
    "facts",
    "trajectory",
    "events",
    "tool_stats",
    "goal_stats",
    "approvals",
    "messages",
)

# The user-facing read models compared between a live projection and a rebuild.
CHECKSUM_VIEWS = ("goals", "tasks", "facts", "trajectory", "events", "approvals", "messages")

DDL: tuple[str, ...] = (*TABLES.values(), *VIEWS.values())
