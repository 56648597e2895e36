"""The DuckDB read models: base tables, the views users query, and how rows merge.

Tables are described once, as data (``TABLES``), and the DDL is generated from that
description, so the columns ``apply`` fills, the Arrow schema ``Batch`` builds and the SQL
``ProjectionStore`` runs can never drift apart. Users query the views and tables by name;
columns may be added, never removed or renamed (bump ``SCHEMA_VERSION`` when the layout
changes: a store with an older version is rebuilt from the event stream).

All timestamps are stored as ``TIMESTAMP`` holding UTC: ``TIMESTAMPTZ`` would make results
depend on the session time zone and need ``pytz`` to fetch into Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = [
    "CHECKPOINT_TABLE",
    "CHECKSUM_VIEWS",
    "DDL",
    "SCHEMA_VERSION",
    "TABLES",
    "VIEWS",
    "Column",
    "Merge",
    "SqlType",
    "TableSpec",
    "table_ddl",
]

SCHEMA_VERSION = 1

SqlType = Literal["VARCHAR", "JSON", "INTEGER", "BIGINT", "DOUBLE", "TIMESTAMP"]


class Merge(StrEnum):
    """How an upserted column combines a new value with the one already stored."""

    LATEST = "latest"  # a later non-null value replaces the stored one
    FIRST = "first"  # the first non-null value stays (e.g. when a task first started)
    MAX = "max"  # the greater value stays (attempt counts, stream positions)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    sql_type: SqlType
    merge: Merge = Merge.LATEST
    required: bool = False  # NOT NULL: key columns and stream positions


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A base table. ``insert`` tables only grow; ``upsert`` tables hold one row per key."""

    name: str
    kind: Literal["insert", "upsert"]
    key: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _key(name: str, sql_type: SqlType = "VARCHAR") -> Column:
    return Column(name, sql_type, required=True)


_LAST_SEQ = Column("last_seq", "BIGINT", Merge.MAX, required=True)

GOALS = TableSpec(
    name="goals",
    kind="upsert",
    key=("goal_id",),
    columns=(
        _key("goal_id"),
        Column("text", "VARCHAR"),
        Column("status", "VARCHAR"),  # running | rejected | completed | failed
        Column("submitted_at", "TIMESTAMP", Merge.FIRST),
        Column("finished_at", "TIMESTAMP"),
        Column("iterations", "INTEGER"),  # the current iteration while running
        Column("score", "DOUBLE"),
        Column("result", "VARCHAR"),
        Column("command_id", "VARCHAR"),
        Column("reason", "VARCHAR"),  # why it was rejected or failed
        Column("metadata", "JSON"),
        Column("max_iterations", "INTEGER"),
        _LAST_SEQ,  # stream sequence of the goal's latest event
    ),
)

TASKS = TableSpec(
    name="tasks",
    kind="upsert",
    key=("goal_id", "iteration", "task_id"),
    columns=(
        _key("goal_id"),
        _key("task_id"),
        _key("iteration", "INTEGER"),
        Column("description", "VARCHAR"),
        Column("tool", "VARCHAR"),
        Column("status", "VARCHAR"),  # scheduled | running | completed | failed
        Column("attempts", "INTEGER", Merge.MAX),
        Column("started_at", "TIMESTAMP", Merge.FIRST),
        Column("finished_at", "TIMESTAMP"),
        Column("output", "VARCHAR"),
        Column("error", "VARCHAR"),
        Column("duration_ms", "DOUBLE"),
        Column("args", "JSON"),
        Column("max_attempts", "INTEGER"),
        _LAST_SEQ,
    ),
)

FACTS = TableSpec(
    name="facts",
    kind="insert",
    key=("key",),
    columns=(
        _key("goal_id"),
        _key("key"),
        Column("value", "VARCHAR"),
        Column("source_event_id", "VARCHAR"),
        Column("recorded_at", "TIMESTAMP"),
        Column("kind", "VARCHAR"),
        Column("importance", "DOUBLE"),
        Column("event_id", "VARCHAR"),  # the memory_stored event itself
    ),
)

# Keyed by event_id rather than stream_seq: an event republished after JetStream's duplicate
# window lands at a second sequence, and must still count once.
EVENTS = TableSpec(
    name="events",
    kind="insert",
    key=("event_id",),
    columns=(
        _key("stream_seq", "BIGINT"),
        _key("event_id"),
        _key("goal_id"),
        _key("type"),
        Column("occurred_at", "TIMESTAMP"),
        Column("payload", "JSON"),
    ),
)

TRAJECTORY_LOG = TableSpec(
    name="trajectory_log",
    kind="insert",
    key=("event_id",),
    columns=(
        _key("goal_id"),
        _key("stream_seq", "BIGINT"),
        Column("occurred_at", "TIMESTAMP"),
        _key("type"),
        Column("actor", "VARCHAR"),
        Column("summary", "VARCHAR"),
        Column("duration_ms", "DOUBLE"),
        Column("tokens_in", "BIGINT"),
        Column("tokens_out", "BIGINT"),
        Column("cost_usd", "DOUBLE"),
        _key("event_id"),
        Column("tool", "VARCHAR"),
    ),
)

# Written in this order inside one transaction.
TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in (EVENTS, TRAJECTORY_LOG, FACTS, GOALS, TASKS)
}

CHECKPOINT_TABLE = "projection_checkpoint"

_CHECKPOINT_DDL = f"""
CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (
    id INTEGER PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    schema_version INTEGER NOT NULL
)"""

VIEWS: dict[str, str] = {
    # step is derived at query time, so a late batch never renumbers stored rows.
    "trajectory": """
CREATE OR REPLACE VIEW trajectory AS
SELECT goal_id,
       row_number() OVER (PARTITION BY goal_id ORDER BY stream_seq) AS step,
       stream_seq, occurred_at, type, actor, summary, duration_ms,
       tokens_in, tokens_out, cost_usd, event_id, tool
FROM trajectory_log""",
    "tool_stats": """
CREATE OR REPLACE VIEW tool_stats AS
SELECT tool,
       count(*) AS calls,
       count(*) FILTER (WHERE type = 'tool_failed') AS failures,
       quantile_cont(duration_ms, 0.5) AS p50_ms,
       quantile_cont(duration_ms, 0.95) AS p95_ms
FROM trajectory_log
WHERE type IN ('tool_returned', 'tool_failed')
GROUP BY tool""",
    # Durations exist only for finished goals; quantiles skip the NULLs of running ones.
    "goal_stats": """
CREATE OR REPLACE VIEW goal_stats AS
SELECT CAST(submitted_at AS DATE) AS day,
       status,
       count(*) AS goals,
       avg(iterations) AS avg_iterations,
       quantile_cont((epoch_us(finished_at) - epoch_us(submitted_at)) / 1000.0, 0.5)
           AS p50_duration_ms,
       quantile_cont((epoch_us(finished_at) - epoch_us(submitted_at)) / 1000.0, 0.95)
           AS p95_duration_ms
FROM goals
WHERE submitted_at IS NOT NULL
GROUP BY ALL""",
}

# The user-facing read models compared between a live projection and a rebuild.
CHECKSUM_VIEWS = ("goals", "tasks", "facts", "trajectory", "events")


def table_ddl(spec: TableSpec) -> str:
    columns = [
        f"    {c.name} {c.sql_type}{' NOT NULL' if c.required else ''}" for c in spec.columns
    ]
    columns.append(f"    PRIMARY KEY ({', '.join(spec.key)})")
    body = ",\n".join(columns)
    return f"CREATE TABLE IF NOT EXISTS {spec.name} (\n{body}\n)"


DDL: tuple[str, ...] = (
    *(table_ddl(spec) for spec in TABLES.values()),
    _CHECKPOINT_DDL,
    *VIEWS.values(),
)
