"""Projection apply: given an event at a stream position -> when applied -> then row changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from events.catalog import (
    EvaluationCompleted,
    GoalAccepted,
    GoalCompleted,
    GoalFailed,
    GoalRejected,
    LlmResponded,
    MemoryStored,
    PlanCreated,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    ToolCalled,
    ToolFailed,
    ToolReturned,
)
from events.model import Event, TaskSpec
from projections.apply import Row, RowChange, apply

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def envelope(event_id: str, producer: str = "planner@0.1.0", goal_id: str = "g-1") -> Any:
    return {
        "event_id": event_id,
        "goal_id": goal_id,
        "occurred_at": NOW,
        "causation_id": None,
        "correlation_id": f"corr-{goal_id}",
        "producer": producer,
    }


def task_envelope(event_id: str) -> Any:
    return {**envelope(event_id, "executor@0.1.0"), "iteration": 1, "task_id": "s1"}


def only(changes: list[RowChange], table: str) -> Row:
    rows = [change.row for change in changes if change.table == table]
    assert len(rows) == 1, f"expected one {table} change, got {rows}"
    return rows[0]


def tables(changes: list[RowChange]) -> list[tuple[str, str]]:
    return [(change.table, change.kind) for change in changes]


def test_every_event_is_logged_raw_and_in_the_trajectory() -> None:
    event = GoalAccepted(**envelope("e-1"), command_id="c-1", text="compute 17*23")

    changes = apply(event, 7)

    raw = only(changes, "events")
    assert raw["stream_seq"] == 7
    assert raw["event_id"] == "e-1"
    assert raw["type"] == "goal_accepted"
    assert json.loads(raw["payload"])["text"] == "compute 17*23"
    step = only(changes, "trajectory_log")
    assert step["actor"] == "planner"
    assert step["summary"] == "accepted: compute 17*23"
    assert step["stream_seq"] == 7
    assert step.get("duration_ms") is None  # partial row: the batch fills the NULL
    assert {c.kind for c in changes if c.table in {"events", "trajectory_log"}} == {"insert"}


def test_goal_accepted_starts_a_running_goal() -> None:
    event = GoalAccepted(**envelope("e-1"), command_id="c-1", text="hi", metadata={"team": "ops"})

    goal = only(apply(event, 3), "goals")

    assert goal == {
        "goal_id": "g-1",
        "last_seq": 3,
        "text": "hi",
        "status": "running",
        "submitted_at": NOW,
        "command_id": "c-1",
        "metadata": '{"team":"ops"}',
        "max_iterations": 3,
    }


def test_goal_rejected_is_finished_with_its_reason() -> None:
    event = GoalRejected(**envelope("e-1"), command_id="c-1", reason="text is empty")

    goal = only(apply(event, 1), "goals")

    assert goal["status"] == "rejected"
    assert goal["reason"] == "text is empty"
    assert goal["submitted_at"] == goal["finished_at"] == NOW
    assert goal["text"] is None  # an empty text would overwrite nothing useful


def test_goal_completed_and_failed_record_the_outcome() -> None:
    completed = GoalCompleted(**envelope("e-1"), result="391", iterations=2, score=0.9)
    failed = GoalFailed(**envelope("e-2"), reason="budget spent", iterations=3)

    done, gave_up = only(apply(completed, 9), "goals"), only(apply(failed, 9), "goals")

    assert (done["status"], done["result"], done["iterations"], done["score"]) == (
        "completed",
        "391",
        2,
        0.9,
    )
    assert done["finished_at"] == NOW
    assert (gave_up["status"], gave_up["reason"], gave_up["score"]) == (
        "failed",
        "budget spent",
        None,
    )


def test_plans_and_evaluations_move_the_goals_iteration_and_score() -> None:
    plan = PlanCreated(
        **envelope("e-1"),
        iteration=2,
        strategy="rules",
        tasks=(TaskSpec(task_id="s1", description="d", tool="echo"),),
    )
    verdict = EvaluationCompleted(
        **envelope("e-2", "evaluator@0.1.0"),
        request_id="r",
        iteration=2,
        verdict="revise",
        score=0.4,
        feedback="missing 391",
    )

    assert only(apply(plan, 1), "goals")["iterations"] == 2
    assert only(apply(verdict, 2), "goals")["score"] == 0.4


def test_task_lifecycle_fills_partial_task_rows() -> None:
    scheduled = TaskScheduled(
        **{**task_envelope("e-1"), "producer": "planner@0.1.0"},
        description="multiply",
        tool="calculator",
        args={"expression": "17*23"},
        timeout_s=5.0,
        max_attempts=3,
    )
    started = TaskStarted(**task_envelope("e-2"), tool="calculator", attempt=2)
    called = ToolCalled(**task_envelope("e-3"), tool="calculator", attempt=2, args={})
    completed = TaskCompleted(
        **task_envelope("e-4"), tool="calculator", output="391", attempts=2, duration_ms=12.5
    )
    failed = TaskFailed(
        **task_envelope("e-5"), tool="calculator", error="boom", attempts=3, duration_ms=40.0
    )

    key = {"goal_id": "g-1", "iteration": 1, "task_id": "s1", "tool": "calculator"}
    assert only(apply(scheduled, 1), "tasks") == {
        **key,
        "last_seq": 1,
        "description": "multiply",
        "status": "scheduled",
        "args": '{"expression":"17*23"}',
        "max_attempts": 3,
    }
    assert only(apply(started, 2), "tasks") == {
        **key,
        "last_seq": 2,
        "status": "running",
        "started_at": NOW,
    }
    assert only(apply(called, 3), "tasks") == {**key, "last_seq": 3, "attempts": 2}
    done = only(apply(completed, 4), "tasks")
    assert (done["status"], done["output"], done["attempts"], done["duration_ms"]) == (
        "completed",
        "391",
        2,
        12.5,
    )
    broken = only(apply(failed, 5), "tasks")
    assert (broken["status"], broken["error"], broken["finished_at"]) == ("failed", "boom", NOW)
    assert all(c.kind == "upsert" for c in apply(completed, 4) if c.table == "tasks")


def test_tool_results_carry_durations_into_the_trajectory() -> None:
    returned = ToolReturned(
        **task_envelope("e-1"), tool="echo", attempt=1, output="hi", duration_ms=3.5
    )
    failed = ToolFailed(
        **task_envelope("e-2"),
        tool="http_get",
        attempt=1,
        error="timeout",
        transient=True,
        duration_ms=900.0,
    )

    ok_step = only(apply(returned, 1), "trajectory_log")
    bad_step = only(apply(failed, 2), "trajectory_log")

    assert (ok_step["duration_ms"], ok_step["tool"], ok_step["actor"]) == (3.5, "echo", "executor")
    assert (bad_step["duration_ms"], bad_step["tool"]) == (900.0, "http_get")
    # The task row only moves forward in the stream; its outcome comes from task_* events.
    assert only(apply(returned, 1), "tasks") == {
        "goal_id": "g-1",
        "iteration": 1,
        "task_id": "s1",
        "tool": "echo",
        "last_seq": 1,
    }


def test_llm_responses_carry_tokens_and_cost() -> None:
    event = LlmResponded(
        **envelope("e-1"),
        provider="openai",
        model="small",
        request_hash="h",
        content="plan",
        tokens_in=120,
        tokens_out=30,
        cost_usd=0.002,
        latency_ms=850.0,
    )

    step = only(apply(event, 1), "trajectory_log")

    assert (step["tokens_in"], step["tokens_out"], step["cost_usd"]) == (120, 30, 0.002)
    assert step["duration_ms"] == 850.0


def test_memory_stored_becomes_one_fact() -> None:
    event = MemoryStored(
        **envelope("e-9", "memory@0.1.0"),
        key="g-1/1/s1",
        text="17*23 = 391",
        kind="result",
        source_event_id="e-4",
    )

    changes = apply(event, 11)

    fact = only(changes, "facts")
    assert fact == {
        "goal_id": "g-1",
        "key": "g-1/1/s1",
        "value": "17*23 = 391",
        "source_event_id": "e-4",
        "recorded_at": NOW,
        "kind": "result",
        "importance": 0.5,
        "event_id": "e-9",
    }
    assert ("facts", "insert") in tables(changes)


class SomethingNewHappened(Event, frozen=True, kw_only=True, tag="something_new_happened"):
    """A type this projection code has never heard of (written by a newer service)."""

    detail: str = ""


def test_an_unknown_event_type_is_only_logged() -> None:
    event = SomethingNewHappened(**envelope("e-1", "oracle@9.9.9"), detail="x")

    changes = apply(event, 5)

    assert tables(changes) == [
        ("events", "insert"),
        ("trajectory_log", "insert"),
        ("goals", "upsert"),
    ]
    assert only(changes, "goals") == {"goal_id": "g-1", "last_seq": 5}
    step = only(changes, "trajectory_log")
    assert (step["type"], step["actor"], step["summary"]) == (
        "something_new_happened",
        "oracle",
        "something_new_happened",
    )
