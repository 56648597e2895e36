"""A goal's events as an AG-UI run (infra/agui_server/mapping.py), from recorded logs
(tests/data): every event valid by the ``ag-ui-protocol`` models, the run's shape, the state
its deltas build, and how live token deltas become text messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from ag_ui.core import BaseEvent, RunAgentInput

from events.catalog import GoalAccepted, ToolCalled
from events.model import Event
from infra.agui_server.inputs import (
    InputNotUnderstoodError,
    command_from_input,
    goal_id_of_run,
)
from infra.agui_server.mapping import RunMapper, json_patch, map_run
from infra.llm.chain import LiveDelta
from tests.agui_support import apply_patch, check_run
from tests.unit.test_timeline import LLM_LOG, OLD_LOG


def _wire(events: list[BaseEvent]) -> list[dict[str, Any]]:
    return [json.loads(e.model_dump_json(by_alias=True)) for e in events]


def _run(goal_id: str, log: list[Event]) -> list[dict[str, Any]]:
    return _wire(map_run("t-1", "r-1", goal_id, [e for e in log if e.goal_id == goal_id]))


def test_a_model_planned_goal_is_a_valid_run_with_its_steps_calls_and_result() -> None:
    wire = _run("r-llm", LLM_LOG)
    state = check_run(wire)
    types = [e["type"] for e in wire]
    assert types[:3] == ["RUN_STARTED", "STATE_SNAPSHOT", "STEP_STARTED"]
    assert wire[0]["protocolVersion"] == "1.0"
    steps = [e["stepName"] for e in wire if e["type"] == "STEP_STARTED"]
    assert steps == [
        "plan #1",
        "task r1 #1",
        "evaluation #1",
        "plan #2",
        "task s1 #2",
        "task s2 #2",
        "evaluation #2",
    ]
    calls = [e["toolCallName"] for e in wire if e["type"] == "TOOL_CALL_START"]
    assert calls == ["calculator", "echo", "calculator", "echo"]  # ReAct's two, then the plain
    results = {e["toolCallId"]: e["content"] for e in wire if e["type"] == "TOOL_CALL_RESULT"}
    assert "391" in results.values()
    args = [json.loads(e["delta"]) for e in wire if e["type"] == "TOOL_CALL_ARGS"]
    assert args[0] == {"expression": "17*23"}
    finished = wire[-1]
    assert finished["type"] == "RUN_FINISHED"
    assert finished["outcome"] == {"type": "success"}
    assert "391" in finished["result"]
    [usage] = finished["usage"]
    assert (usage["inputTokens"], usage["outputTokens"]) == (150, 65)  # the log's 7 calls
    text = [e["delta"] for e in wire if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert text == [finished["result"]]
    assert state["status"] == "completed"
    assert state["result"] == finished["result"]
    assert state["iteration"] == 2
    assert state["evaluation"]["verdict"] == "accept"
    assert state["tasks"]["s1"] == {
        "iteration": 2,
        "tool": "calculator",
        "status": "completed",
        "output": "391",
    }


@pytest.mark.parametrize(
    ("goal_id", "last", "code"),
    [
        ("h-standard", "RUN_FINISHED", None),
        ("h-dag", "RUN_FINISHED", None),
        ("h-files", "RUN_FINISHED", None),
        ("h-failed", "RUN_ERROR", "goal_failed"),
        ("h-toolfail", "RUN_ERROR", "goal_failed"),
        ("h-rejected", "RUN_ERROR", "goal_rejected"),
    ],
)
def test_older_logs_retries_failures_and_a_rejection_are_valid_runs(
    goal_id: str, last: str, code: str | None
) -> None:
    wire = _run(goal_id, OLD_LOG)
    state = check_run(wire)
    assert wire[-1]["type"] == last
    if code is not None:
        assert wire[-1]["code"] == code
        assert wire[-1]["message"]
    if goal_id == "h-rejected":
        assert [e["type"] for e in wire] == ["RUN_STARTED", "RUN_ERROR"]  # never accepted
    else:
        assert state["status"] == ("completed" if code is None else "failed")


def test_a_retried_tool_call_is_answered_by_its_failure_then_its_retry_by_the_output() -> None:
    wire = _run("h-toolfail", OLD_LOG)
    results = [e["content"] for e in wire if e["type"] == "TOOL_CALL_RESULT"]
    assert results
    assert all(r.startswith("error: ") for r in results)


def test_nothing_follows_the_end_of_a_run() -> None:
    events = [e for e in LLM_LOG if e.goal_id == "r-llm"]
    mapper = RunMapper("t", "r", "r-llm")
    for event in events:
        mapper.event(event)
    assert mapper.finished
    assert events[-1].goal_id == "r-llm"
    assert mapper.event(events[-1]) == []  # memory_stored after the end: nothing
    assert mapper.live(_delta(0, "late")) == []


def _delta(seq: int, text: str, *, attempt: int = 1, done: bool = False) -> LiveDelta:
    return LiveDelta(
        goal_id="g",
        purpose="plan",
        provider="openai",
        model="m",
        attempt=attempt,
        seq=seq,
        delta=text,
        done=done,
    )


def test_live_deltas_are_one_text_message_per_call_and_a_retry_starts_another() -> None:
    mapper = RunMapper("t", "r", "g")
    mapper.started()
    accepted = GoalAccepted(
        event_id="e1",
        goal_id="g",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        causation_id=None,
        correlation_id="g",
        producer="planner@1",
        command_id="c",
        text="go",
    )
    sent = _wire(mapper.event(accepted))
    for delta in (
        _delta(0, "The ans"),
        _delta(1, "wer"),
        _delta(0, "Again", attempt=2),  # the first attempt failed midway: a new message
        _delta(1, "", attempt=2, done=True),
        _delta(0, "next call"),  # a second call of the same purpose, no done yet
    ):
        sent += _wire(mapper.live(delta))
    kinds = [(e["type"], e.get("delta")) for e in sent[2:]]
    assert kinds == [
        ("TEXT_MESSAGE_START", None),
        ("TEXT_MESSAGE_CONTENT", "The ans"),
        ("TEXT_MESSAGE_CONTENT", "wer"),
        ("TEXT_MESSAGE_END", None),
        ("TEXT_MESSAGE_START", None),
        ("TEXT_MESSAGE_CONTENT", "Again"),
        ("TEXT_MESSAGE_END", None),
        ("TEXT_MESSAGE_START", None),
        ("TEXT_MESSAGE_CONTENT", "next call"),
    ]
    ids = [e["messageId"] for e in sent[2:] if e["type"] == "TEXT_MESSAGE_START"]
    assert len(set(ids)) == 3


def test_a_tool_call_seen_twice_is_answered_before_it_starts_again() -> None:
    base = {
        "goal_id": "g",
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
        "causation_id": None,
        "correlation_id": "g",
        "producer": "executor@1",
        "iteration": 1,
        "task_id": "a",
        "tool": "sleep",
        "attempt": 1,
        "args": {"seconds": 1},
    }
    mapper = RunMapper("t", "r", "g")
    first = _wire(mapper.event(ToolCalled(event_id="c1", **base)))
    second = _wire(mapper.event(ToolCalled(event_id="c2", **base)))
    assert [e["type"] for e in first] == ["TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END"]
    assert second[0]["type"] == "TOOL_CALL_RESULT"
    assert second[0]["toolCallId"] == "c1"


def test_json_patch_turns_one_state_into_the_other() -> None:
    before = {"a": 1, "tasks": {"x/y~": {"s": "planned"}, "gone": {}}, "keep": [1]}
    after = {"a": 2, "tasks": {"x/y~": {"s": "done", "o": "1"}}, "keep": [1], "new": None}
    ops = json_patch(before, after)
    assert apply_patch(before, ops) == after
    assert {"op": "replace", "path": "/tasks/x~1y~0/s", "value": "done"} in ops
    assert json_patch(after, after) == []


def _input(**fields: Any) -> RunAgentInput:
    body = {
        "threadId": "th-1",
        "runId": "run-1",
        "messages": [
            {"id": "m0", "role": "user", "content": "earlier"},
            {"id": "m1", "role": "assistant", "content": "ok"},
            {"id": "m2", "role": "user", "content": [{"type": "text", "text": "compute 6*7"}]},
        ],
        **fields,
    }
    return RunAgentInput.model_validate(body)


def test_a_run_input_becomes_an_intake_command_with_ids_from_thread_and_run() -> None:
    steps = [{"tool": "calculator", "args": {"expression": "6*7"}}]
    command = command_from_input(
        _input(forwardedProps={"agora": {"steps": steps, "metadata": {"team": "ops"}}})
    )
    goal_id = goal_id_of_run("th-1", "run-1")
    assert command == {
        "steps": steps,
        "text": "compute 6*7",
        "metadata": {"team": "ops", "agui": {"thread_id": "th-1", "run_id": "run-1"}},
        "goal_id": goal_id,
        "command_id": goal_id,
    }
    assert goal_id_of_run("th-1", "run-2") != goal_id
    assert command_from_input(_input(forwardedProps={"other": 1}))["text"] == "compute 6*7"


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"messages": [{"id": "m", "role": "assistant", "content": "hi"}]}, "no user message"),
        ({"messages": [{"id": "m", "role": "user", "content": "  "}]}, "no user message"),
        ({"forwardedProps": [1]}, "forwardedProps must be a JSON object"),
        ({"forwardedProps": {"agora": "steps"}}, "forwardedProps.agora must be a JSON object"),
        ({"forwardedProps": {"agora": {"goal_id": "x"}}}, "names goal_id"),
        ({"forwardedProps": {"agora": {"metadata": 3}}}, "metadata must be a JSON object"),
        ({"threadId": "t" * 300}, "threadId must be 1 to 256"),
        ({"runId": ""}, "runId must be 1 to 256"),
    ],
)
def test_a_run_input_that_cannot_be_a_goal_says_why(fields: dict[str, Any], said: str) -> None:
    with pytest.raises(InputNotUnderstoodError, match=said):
        command_from_input(_input(**fields))
