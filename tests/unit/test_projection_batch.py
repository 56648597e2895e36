"""Projection batches: given row changes -> when merged -> then one row per key, as Arrow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from events.catalog import GoalAccepted, GoalCompleted, TaskStarted, ToolCalled
from projections.apply import RowChange
from projections.batch import ARROW_SCHEMAS, Batch
from projections.schema import TABLES

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def task_upsert(seq: int, **fields: object) -> RowChange:
    key = {"goal_id": "g-1", "iteration": 1, "task_id": "s1"}
    return RowChange("tasks", "upsert", {**key, "last_seq": seq, **fields})


def test_upserts_merge_per_key_later_non_null_values_win() -> None:
    batch = Batch()

    batch.extend(
        [
            task_upsert(1, status="scheduled", description="multiply", tool="calculator"),
            task_upsert(2, status="running", description=None),
            task_upsert(3, status="completed", output="391"),
        ]
    )

    [row] = batch.rows("tasks")
    assert row["status"] == "completed"
    assert row["description"] == "multiply"  # a later None does not erase it
    assert row["output"] == "391"
    assert row["last_seq"] == 3


def test_attempts_take_the_maximum_and_started_at_the_first_value() -> None:
    first_start, retry_start = NOW, NOW + timedelta(seconds=5)
    batch = Batch()

    batch.extend(
        [
            task_upsert(1, attempts=2, started_at=first_start),
            task_upsert(2, attempts=1, started_at=retry_start),
        ]
    )

    [row] = batch.rows("tasks")
    assert row["attempts"] == 2
    assert row["started_at"] == first_start


def test_different_keys_stay_separate_rows() -> None:
    batch = Batch()

    batch.add(task_upsert(1, status="scheduled"))
    batch.add(
        RowChange(
            "tasks",
            "upsert",
            {"goal_id": "g-1", "iteration": 2, "task_id": "s1", "last_seq": 2, "status": "running"},
        )
    )

    assert sorted(row["iteration"] for row in batch.rows("tasks")) == [1, 2]


def test_a_repeated_insert_keeps_the_first_row() -> None:
    batch = Batch()
    first = {"goal_id": "g-1", "key": "k", "value": "first"}

    batch.add(RowChange("facts", "insert", first))
    batch.add(RowChange("facts", "insert", {**first, "value": "second"}))

    assert [row["value"] for row in batch.rows("facts")] == ["first"]


def test_events_are_applied_in_order_and_the_last_sequence_tracked() -> None:
    envelope: dict[str, Any] = {
        "goal_id": "g-1",
        "occurred_at": NOW,
        "causation_id": None,
        "correlation_id": "c",
        "producer": "planner@0.1.0",
    }
    batch = Batch()

    batch.add_event(GoalAccepted(**envelope, event_id="e-1", command_id="c", text="hi"), 41)
    batch.add_event(
        GoalCompleted(**envelope, event_id="e-2", result="ok", iterations=1, score=1.0), 42
    )

    assert (len(batch), batch.last_seq) == (2, 42)
    [goal] = batch.rows("goals")
    assert (goal["status"], goal["text"], goal["last_seq"]) == ("completed", "hi", 42)
    assert len(batch.rows("events")) == len(batch.rows("trajectory_log")) == 2


def test_to_arrow_gives_every_table_its_fixed_columns_with_nulls_for_missing_ones() -> None:
    executor: dict[str, Any] = {
        "goal_id": "g-1",
        "occurred_at": NOW,
        "causation_id": None,
        "correlation_id": "c",
        "producer": "executor@0.1.0",
        "iteration": 1,
        "task_id": "s1",
        "tool": "echo",
        "attempt": 1,
    }
    batch = Batch()
    batch.add_event(TaskStarted(**executor, event_id="e-1"), 1)
    batch.add_event(ToolCalled(**executor, event_id="e-2", args={"text": "x"}), 2)

    arrow = batch.to_arrow()

    assert list(arrow) == list(TABLES)
    for name, table in arrow.items():
        assert table.schema == ARROW_SCHEMAS[name]
        assert table.column_names == list(TABLES[name].column_names)
    tasks = arrow["tasks"].to_pylist()
    assert len(tasks) == 1
    assert tasks[0]["status"] == "running"
    assert tasks[0]["attempts"] == 1
    assert tasks[0]["description"] is None  # partial: task_scheduled was not in this batch
    assert arrow["facts"].num_rows == 0
    assert arrow["events"].num_rows == 2


def test_timestamps_become_utc() -> None:
    two_hours_east = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    batch = Batch()
    batch.add(
        RowChange(
            "goals", "upsert", {"goal_id": "g", "last_seq": 1, "submitted_at": two_hours_east}
        )
    )

    column = batch.to_arrow()["goals"].column("submitted_at")

    assert column.type == pa.timestamp("us")
    assert column.to_pylist() == [datetime(2024, 5, 1, 12, 0)]  # naive, in UTC
