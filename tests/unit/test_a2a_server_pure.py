"""agora's A2A server, the pure parts: a message as an intake command, a goal's events as an
A2A task and its stream updates, the agent card, the bearer token's rules."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from a2a.types import ListTasksRequest, Message, Part, Role, TaskArtifactUpdateEvent, TaskState
from a2a.types import TaskStatusUpdateEvent as StatusUpdate
from google.protobuf import struct_pb2
from google.protobuf.json_format import ParseDict

from events.catalog import (
    GoalAccepted,
    GoalCancelled,
    GoalCompleted,
    GoalFailed,
    GoalPaused,
    GoalRejected,
    TaskCompleted,
    TaskScheduled,
)
from events.commands import GoalCommand
from events.errors import ConfigurationError
from events.model import Event
from infra.a2a_server.auth import A2A_TOKEN
from infra.a2a_server.card import BEARER_SCHEME, SKILL_IDS, agent_card
from infra.a2a_server.listing import (
    A2A_TASK_ID_PATTERN,
    BadListRequestError,
    page_token,
    task_list_query,
)
from infra.a2a_server.messages import (
    MessageNotUnderstoodError,
    command_from_message,
    task_ids,
)
from infra.a2a_server.tasks import evolve, fold, submitted, to_task, updates
from infra.platform.bearer import BearerToken, resolve_token

START = datetime(2026, 12, 7, tzinfo=UTC)


def _message(*parts: Part, message_id: str = "m-1") -> Message:
    return Message(message_id=message_id, role=Role.ROLE_USER, parts=parts)


def _data(value: Any) -> Part:
    return Part(data=ParseDict(value, struct_pb2.Value()))


def test_the_text_is_the_goal_and_a_data_part_the_rest_of_the_intake_command() -> None:
    steps = [{"tool": "calculator", "args": {"expression": "17*23"}}]
    message = _message(
        Part(text="multiply"),
        Part(text="then report"),
        _data({"steps": steps, "expect": {"contains": "391"}, "metadata": {"team": "ops"}}),
    )
    command = command_from_message(message, context_id="ctx-1")
    assert command["text"] == "multiply\nthen report"
    assert command["steps"] == steps
    assert command["metadata"] == {
        "team": "ops",
        "a2a": {"message_id": "m-1", "context_id": "ctx-1"},
    }
    assert (command["goal_id"], command["command_id"]) == (
        task_ids("m-1").goal_id,
        task_ids("m-1").command_id,
    )
    msgspec.convert(command, GoalCommand)  # what the planner's intake accepts


def test_the_same_message_id_names_the_same_goal_and_any_id_makes_a_subject_token() -> None:
    assert task_ids("m-1") == task_ids("m-1")
    assert task_ids("m-1") != task_ids("m-2")
    odd = task_ids("a.b c/\nd")
    assert odd.goal_id.replace("-", "").isalnum()
    data_text = command_from_message(_message(_data({"text": "from data"})), context_id="c")
    assert data_text["text"] == "from data"


@pytest.mark.parametrize(
    ("parts", "message_id", "why"),
    [
        ((), "m-1", "no text"),
        ((Part(text="  "),), "m-1", "no text"),
        ((Part(text="x"),), "", "no messageId"),
        ((Part(text="x"), _data([1, 2])), "m-1", "JSON object"),
        ((Part(text="x"), _data({"goal_id": "mine"})), "m-1", "agora chooses them"),
        ((Part(text="x"), _data({}), _data({})), "m-1", "2 data parts"),
        ((Part(text="x"), _data({"metadata": [1]})), "m-1", "metadata must be"),
    ],
)
def test_a_message_that_cannot_be_a_goal_says_why(
    parts: tuple[Part, ...], message_id: str, why: str
) -> None:
    with pytest.raises(MessageNotUnderstoodError, match=why):
        command_from_message(_message(*parts, message_id=message_id), context_id="c")


def _envelope(n: int) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "goal_id": "g-1",
        "occurred_at": START + timedelta(seconds=n),
        "causation_id": None,
        "correlation_id": "g-1",
        "producer": "planner@1",
    }


def _accepted() -> Event:
    metadata = {"a2a": {"message_id": "m-1", "context_id": "ctx-1"}}
    return GoalAccepted(**_envelope(1), command_id="c-1", text="multiply", metadata=metadata)


def _scheduled(n: int) -> Event:
    return TaskScheduled(
        **_envelope(n),
        iteration=1,
        task_id="a",
        description="calculate",
        tool="calculator",
        args={"expression": "17*23"},
        timeout_s=30,
        max_attempts=3,
    )


def _completed(n: int, task_id: str, output: str) -> Event:
    return TaskCompleted(
        **_envelope(n),
        iteration=1,
        task_id=task_id,
        tool="calculator",
        output=output,
        attempts=1,
        duration_ms=1.0,
    )


def test_a_goal_works_then_completes_with_each_step_an_artifact_and_the_result_last() -> None:
    events = [
        _accepted(),
        _scheduled(2),
        _completed(3, "a", "391"),
        GoalCompleted(**_envelope(4), result="the answer is 391", iterations=1, score=1.0),
    ]
    working = fold(events[:2])
    assert working is not None
    assert working.state == TaskState.TASK_STATE_WORKING
    assert working.status_text.startswith("task_scheduled: a scheduled: calculator")
    done = fold(events)
    assert done is not None
    task = to_task(done)
    assert (task.id, task.context_id) == ("g-1", "ctx-1")
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.status.message.parts[0].text == "the answer is 391"
    assert task.status.message.role == Role.ROLE_AGENT
    assert task.status.timestamp.ToDatetime(tzinfo=UTC) == START + timedelta(seconds=4)
    assert [(a.artifact_id, a.parts[0].text) for a in task.artifacts] == [
        ("step-1-a", "391"),
        ("result", "the answer is 391"),
    ]
    [user] = task.history
    assert (user.message_id, user.role, user.parts[0].text) == ("m-1", Role.ROLE_USER, "multiply")
    assert not to_task(done, history_length=0).history


@pytest.mark.parametrize(
    ("last", "state", "text"),
    [
        (
            GoalFailed(**_envelope(3), reason="no attempt left", iterations=1),
            "FAILED",
            "no attempt",
        ),
        (GoalCancelled(**_envelope(3), command_id="c-9", reason="not needed"), "CANCELED", "not"),
        (GoalPaused(**_envelope(3), command_id="c-9", reason="wait"), "WORKING", "goal_paused"),
    ],
)
def test_the_state_follows_the_goals_outcome(last: Event, state: str, text: str) -> None:
    record = fold([_accepted(), _scheduled(2), last])
    assert record is not None
    assert TaskState.Name(record.state) == f"TASK_STATE_{state}"
    assert record.status_text.startswith(text)


def test_a_rejected_goal_is_a_rejected_task_with_the_reason() -> None:
    rejected = GoalRejected(**_envelope(1), command_id="c-1", reason="unknown tool 'x'", text="t")
    record = fold([rejected])
    assert record is not None
    assert record.state == TaskState.TASK_STATE_REJECTED
    assert record.status_text == "unknown tool 'x'"
    assert fold([]) is None


def test_an_ended_task_ignores_late_events() -> None:
    ended = fold([_accepted(), GoalFailed(**_envelope(2), reason="boom", iterations=1)])
    assert ended is not None
    assert evolve(ended, _completed(3, "a", "late")) == ended


def test_a_stream_sends_the_new_artifacts_then_the_status() -> None:
    before = submitted("g-1", context_id="ctx-1", text="multiply", message_id="m-1")
    accepted = evolve(before, _accepted())
    [status] = updates(before, accepted)
    assert isinstance(status, StatusUpdate)
    assert (status.task_id, status.context_id) == ("g-1", "ctx-1")
    assert status.status.state == TaskState.TASK_STATE_WORKING
    step = evolve(accepted, _completed(2, "a", "391"))
    artifact, status = updates(accepted, step)
    assert isinstance(artifact, TaskArtifactUpdateEvent)
    assert (artifact.artifact.artifact_id, artifact.last_chunk) == ("step-1-a", True)
    assert isinstance(status, StatusUpdate)
    assert updates(step, step) == []


def test_the_card_names_the_json_rpc_endpoint_its_skills_and_the_bearer_scheme() -> None:
    card = agent_card(rpc_url="https://agora.example/a2a", version="1.2.3")
    [interface] = card.supported_interfaces
    assert (interface.url, interface.protocol_binding, interface.protocol_version) == (
        "https://agora.example/a2a",
        "JSONRPC",
        "1.0",
    )
    assert tuple(skill.id for skill in card.skills) == SKILL_IDS == ("run-goal", "run-steps")
    assert card.capabilities.streaming
    assert not card.capabilities.push_notifications
    scheme = card.security_schemes[BEARER_SCHEME].http_auth_security_scheme
    assert scheme.scheme == "Bearer"
    assert BEARER_SCHEME in card.security_requirements[0].schemes
    assert card.version == "1.2.3"


def test_the_a2a_token_follows_the_http_endpoints_rules(tmp_path: Path) -> None:
    generated = tmp_path / "a2a" / "token"

    def resolve(token: str | None, host: str) -> BearerToken:
        return resolve_token(
            A2A_TOKEN, token=token, token_file=None, host=host, generated_path=generated
        )

    with pytest.raises(ConfigurationError, match=r"agora a2a on 0\.0\.0\.0 .* AGORA_A2A_TOKEN"):
        resolve(None, "0.0.0.0")
    with pytest.raises(ConfigurationError, match=r"A2A bearer token .* too short"):
        resolve("short", "::1")
    assert not generated.exists()
    made = resolve(None, "127.0.0.1")
    assert generated.stat().st_mode & 0o777 == 0o600
    assert made.source == str(generated)
    assert resolve(None, "localhost") == made


def test_list_tasks_finds_every_a2a_task_id_and_takes_back_only_its_own_page_tokens() -> None:
    for message_id in ("m-1", "6f1c-…", "x" * 500):
        assert re.fullmatch(A2A_TASK_ID_PATTERN, task_ids(message_id).goal_id)
    assert not re.fullmatch(A2A_TASK_ID_PATTERN, "a2a-mine")  # a goal named so by hand
    query = task_list_query(ListTasksRequest(page_size=2, page_token=page_token(17)))
    assert query.page_params[-1] == 17
    assert query.page_sql.endswith("LIMIT 3")  # one more than the page: is there another?
    assert 17 not in query.count_params  # the total counts every page
    for forged in ("not-a-token", page_token(0), "eyJiZWZvcmVfc2VxIjp0cnVlfQ"):
        with pytest.raises(BadListRequestError, match="not one agora gave"):
            task_list_query(ListTasksRequest(page_token=forged))
