"""A newer producer's additions never make an older consumer dead-letter an event."""

from __future__ import annotations

import json

import msgspec
import pytest

from events.catalog import EvaluationRequested, GoalAccepted, TaskScheduled
from events.codec import decode_event
from events.commands import RejectedGoal, parse_goal_command
from events.model import Budget, Expect, ForkPoint

_ENVELOPE = {
    "event_id": "e-1",
    "schema_version": 1,
    "goal_id": "g-1",
    "occurred_at": "2026-12-01T10:00:00Z",
    "causation_id": None,
    "correlation_id": "g-1",
    "producer": "planner@9.9.9",
}


def _from_newer_producer(kind: str, **fields: object) -> bytes:
    return json.dumps({"type": kind, **_ENVELOPE, **fields, "added_later": [1, 2]}).encode()


def test_goal_accepted_with_unknown_fields_in_every_value_object_decodes() -> None:
    event = decode_event(
        _from_newer_producer(
            "goal_accepted",
            text="t",
            command_id="c-1",
            expect={"contains": "391", "similar_to": "three hundred"},
            budget={"max_tokens": 10, "max_wall_s": 60},
            forked_from={"goal_id": "g-0", "at_seq": 4, "branch": "b"},
        )
    )
    assert isinstance(event, GoalAccepted)
    assert event.expect == Expect(contains="391")
    assert event.budget == Budget(max_tokens=10)
    assert event.forked_from == ForkPoint(goal_id="g-0", at_seq=4)


def test_task_and_evaluation_requests_with_newer_budgets_decode() -> None:
    task = decode_event(
        _from_newer_producer(
            "task_scheduled",
            iteration=1,
            task_id="s1",
            description="d",
            tool="echo",
            args={},
            timeout_s=30.0,
            max_attempts=3,
            llm_budget={"max_cost_usd": 1.5, "currency": "EUR"},
        )
    )
    assert isinstance(task, TaskScheduled)
    assert task.llm_budget == Budget(max_cost_usd=1.5)
    evaluation = decode_event(
        _from_newer_producer(
            "evaluation_requested",
            iteration=1,
            text="t",
            result="391",
            tasks=[],
            expect={"equals": "391", "x": 1},
        )
    )
    assert isinstance(evaluation, EvaluationRequested)
    assert evaluation.expect == Expect(equals="391")


@pytest.mark.parametrize("field", ["expect", "step"])
def test_intake_stays_strict_about_fields_it_does_not_know(field: str) -> None:
    command = {"text": "t", "steps": [{"tool": "echo", "args": {}}]}
    if field == "expect":
        command["expect"] = {"contain": "391"}  # misspelt: must not be silently ignored
    else:
        command["steps"] = [{"tool": "echo", "arg": {}}]
    parsed = parse_goal_command(
        msgspec.json.encode(command), fallback_command_id="c-1", max_bytes=10_000
    )
    assert isinstance(parsed, RejectedGoal)
    assert "unknown field" in parsed.reason.lower()
