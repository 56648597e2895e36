"""Event summaries: given an event -> when summarised -> then one readable, bounded line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from events.catalog import GoalAccepted, PlanCreated, TaskScheduled, ToolReturned
from events.model import TaskSpec
from events.summary import summarize

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ENVELOPE: dict[str, Any] = {
    "event_id": "e-1",
    "goal_id": "g-1",
    "occurred_at": NOW,
    "causation_id": None,
    "correlation_id": "g-1",
    "producer": "planner@0.1.0",
}


def scheduled(args: dict[str, Any]) -> TaskScheduled:
    return TaskScheduled(
        **ENVELOPE,
        iteration=1,
        task_id="s1",
        description="d",
        tool="echo",
        args=args,
        timeout_s=1.0,
        max_attempts=3,
    )


def test_free_text_is_flattened_and_clipped() -> None:
    event = GoalAccepted(**ENVELOPE, command_id="c", text="  compute\n\t17*23\u3000now " + "x" * 80)

    line = summarize(event)

    assert line.startswith("accepted: compute 17*23 now xxx")
    assert len(line) == len("accepted: ") + 60
    assert line.endswith("x…")


def test_arguments_show_as_compact_json() -> None:
    assert summarize(scheduled({"text": "hi", "n": [1, None, True]})) == (
        's1 scheduled: echo {"text":"hi","n":[1,null,true]}'
    )


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        (1.0, "1.0"),
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (1.5e-6, "0.0000015"),
        (1e-7, "1e-7"),
        (1.5e16, "15000000000000000.0"),
        (1e21, "1e21"),
        (123.456, "123.456"),
    ],
)
def test_float_arguments_are_spelled_as_duckdb_spells_them(number: float, shown: str) -> None:
    assert summarize(scheduled({"x": number})) == f's1 scheduled: echo {{"x":{shown}}}'


def test_durations_have_one_decimal() -> None:
    event = ToolReturned(
        **ENVELOPE, iteration=1, task_id="s1", tool="echo", attempt=1, output="ok", duration_ms=2.25
    )

    assert summarize(event) == "s1 ← ok (2.2 ms)"


def test_the_whole_line_is_cut_at_120_code_points() -> None:
    tasks = tuple(TaskSpec(task_id=f"step-{i}", description="d", tool="echo") for i in range(20))

    line = summarize(PlanCreated(**ENVELOPE, iteration=1, strategy="rules", tasks=tasks))

    assert len(line) == 120
    assert line.startswith("plan #1 (rules): step-0:echo, step-1:echo")
    assert line.endswith("…")
