"""agora as an A2A server, as another agent meets it: the official `a2a-sdk` client against
`agora a2a` (JSON-RPC, A2A 1.0, its bearer token), against `agora up` with its generated
credentials and permissions; then every agora process restarted."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError
from google.protobuf import struct_pb2
from google.protobuf.json_format import ParseDict

from infra.a2a_server.card import SKILL_IDS
from tests.e2e.test_cli import AGORA, _agora, _env

TOKEN = "s3cret-token-for-the-a2a-test-0123456789"


def _start_platform(env: dict[str, str]) -> subprocess.Popen[bytes]:
    up = subprocess.Popen([*AGORA, "up"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _agora("query", "SELECT count(*) FROM goals", env=env).returncode != 0:
        assert up.poll() is None, "agora up exited early"
        assert time.monotonic() < deadline, "agora up's projector never answered"
        time.sleep(0.1)  # polling another process's readiness, with a deadline
    return up


def _stop(up: subprocess.Popen[bytes]) -> None:
    up.send_signal(signal.SIGINT)
    assert up.wait(30) == 0


@pytest.fixture
def platform_env(tmp_path: Path) -> dict[str, str]:
    env = _env(tmp_path / "agora")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    return {**env, "AGORA_A2A_TOKEN_FILE": str(token_file)}


@asynccontextmanager
async def _agora_a2a(env: dict[str, str], *args: str) -> AsyncIterator[tuple[str, str]]:
    """`agora a2a` on a free port: its base URL, and what it said on stderr up to that."""
    proc = await asyncio.create_subprocess_exec(
        *AGORA, "a2a", "--port", "0", *args, env=env, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    said = ""
    try:
        async with asyncio.timeout(30):
            while "agent card at " not in said:
                line = (await proc.stderr.readline()).decode()
                assert line, f"agora a2a ended: {said}"
                said += line
        card_url = said.split("agent card at ")[1].split()[0]
        yield card_url.removesuffix("/.well-known/agent-card.json"), said
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            said += (await proc.stderr.read()).decode()
            await proc.wait()
        assert TOKEN not in said  # never logged


@asynccontextmanager
async def _client(base: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=120)) as http:
        client = await ClientFactory(ClientConfig(httpx_client=http)).create_from_url(base)
        async with client:
            yield client


def _message(text: str, *, data: dict[str, Any] | None = None, message_id: str = "") -> Message:
    parts = [Part(text=text)]
    if data is not None:
        parts.append(Part(data=ParseDict(data, struct_pb2.Value())))
    return Message(message_id=message_id or str(uuid.uuid4()), role=Role.ROLE_USER, parts=parts)


MULTIPLY = {
    "steps": [
        {"id": "a", "tool": "calculator", "args": {"expression": "17*23"}},
        {
            "id": "b",
            "tool": "echo",
            "args": {"text": "the answer is {{steps.a.output}}"},
            "depends_on": ["a"],
        },
    ],
    "expect": {"contains": "391"},
}


async def _stream(client: Client, message: Message) -> list[StreamResponse]:
    return [sent async for sent in client.send_message(SendMessageRequest(message=message))]


def _text(task: Task) -> str:
    return " ".join(part.text for part in task.status.message.parts)


@pytest.mark.slow
async def test_an_a2a_client_streams_a_task_gets_it_after_a_restart_and_cancels_another(
    platform_env: dict[str, str],
) -> None:
    up = _start_platform(platform_env)
    try:
        async with _agora_a2a(platform_env) as (base, announced):
            assert base.startswith("http://127.0.0.1:")
            token_file = platform_env["AGORA_A2A_TOKEN_FILE"]
            assert f"bearer token from {token_file}" in announced
            assert f"chmod 600 {token_file}" in announced  # a token others can read: said

            async with httpx.AsyncClient() as http:
                card = await A2ACardResolver(http, base).get_agent_card()
                refused = await http.post(f"{base}/a2a", json={"jsonrpc": "2.0", "id": 1})
                wrong = await http.post(
                    f"{base}/a2a",
                    json={"jsonrpc": "2.0", "id": 1},
                    headers={"Authorization": "Bearer wrong-token-0123456789abcdef"},
                )
            assert [skill.id for skill in card.skills] == list(SKILL_IDS)
            assert card.capabilities.streaming
            [interface] = card.supported_interfaces
            assert (interface.url, interface.protocol_binding) == (f"{base}/a2a", "JSONRPC")
            assert interface.protocol_version == "1.0"
            assert "bearer" in card.security_schemes
            for response in (refused, wrong):
                assert response.status_code == 401, response.text
                assert response.headers["www-authenticate"].startswith("Bearer")

            async with _client(base) as client:
                first = _message("multiply then report", data=MULTIPLY)
                streamed = await _stream(client, first)
                task_id = streamed[0].task.id
                assert streamed[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
                states = [
                    s.status_update.status.state for s in streamed if s.HasField("status_update")
                ]
                assert states[0] == TaskState.TASK_STATE_WORKING
                assert states[-1] == TaskState.TASK_STATE_COMPLETED
                assert set(states[:-1]) == {TaskState.TASK_STATE_WORKING}
                artifacts = [
                    s.artifact_update.artifact for s in streamed if s.HasField("artifact_update")
                ]
                assert [a.artifact_id for a in artifacts] == ["step-1-a", "step-1-b", "result"]
                assert artifacts[0].parts[0].text == "391"
                assert "391" in artifacts[-1].parts[0].text
                assert all(
                    s.status_update.task_id == task_id
                    for s in streamed[1:]
                    if s.HasField("status_update")
                )

                # The same message again: the same task, no second goal.
                again = await _stream(client, first)
                assert again[0].task.id == task_id
                assert again[0].task.status.state == TaskState.TASK_STATE_COMPLETED

                # Unparseable intake: the goal is rejected with the planner's reason.
                bad = _message("bad steps", data={"steps": [{"tool": "no_such_tool"}]})
                rejected = [s async for s in client.send_message(SendMessageRequest(message=bad))]
                assert rejected[-1].status_update.status.state == TaskState.TASK_STATE_REJECTED
                assert "no_such_tool" in " ".join(
                    p.text for p in rejected[-1].status_update.status.message.parts
                )
    finally:
        _stop(up)

    count = _agora("query", "SELECT count(*) FROM goals", env=platform_env)
    assert count.returncode != 0  # every agora process is down

    up = _start_platform(platform_env)
    try:
        async with _agora_a2a(platform_env) as (base, _), _client(base) as client:
            fetched = await client.get_task(GetTaskRequest(id=task_id))
            assert fetched.status.state == TaskState.TASK_STATE_COMPLETED
            assert "391" in _text(fetched)
            assert [a.artifact_id for a in fetched.artifacts] == ["step-1-a", "step-1-b", "result"]
            assert fetched.history[0].message_id == first.message_id
            assert fetched.history[0].parts[0].text == "multiply then report"
            rows = _agora(
                "query", "SELECT count(*) AS n FROM goals", "--format", "json", env=platform_env
            )
            assert json.loads(rows.stdout)[0]["n"] == 2  # the resent message made no goal

            # Listed, newest first, a page at a time: the rejected task, then the first.
            page = await client.list_tasks(ListTasksRequest(page_size=1, include_artifacts=True))
            assert page.total_size == 2
            assert page.tasks[0].status.state == TaskState.TASK_STATE_REJECTED
            rest = await client.list_tasks(
                ListTasksRequest(page_size=1, page_token=page.next_page_token)
            )
            assert [t.id for t in rest.tasks] == [task_id]
            assert not rest.next_page_token
            mine = await client.list_tasks(
                ListTasksRequest(context_id=fetched.context_id, include_artifacts=True)
            )
            assert [a.artifact_id for a in mine.tasks[0].artifacts][-1] == "result"

            await _cancel_a_running_task(client)

            with pytest.raises(TaskNotFoundError, match="no task"):
                await client.get_task(GetTaskRequest(id="a2a-no-such-task"))
    finally:
        _stop(up)


async def _cancel_a_running_task(client: Client) -> None:
    sleepy = _message("a long sleep", data={"steps": [{"tool": "sleep", "args": {"seconds": 60}}]})
    # Follow the stream until the executor calls the tool, then cancel from beside it.
    task_id = ""
    async with asyncio.timeout(30):
        async for sent in client.send_message(SendMessageRequest(message=sleepy)):
            if sent.HasField("task"):
                task_id = sent.task.id
            line = " ".join(p.text for p in sent.status_update.status.message.parts)
            if line.startswith("tool_called"):
                assert "sleep" in line
                break
    # Subscribed again (as a client whose stream broke would), it sees the cancel.
    subscription = client.subscribe(SubscribeToTaskRequest(id=task_id))
    current = await anext(subscription)
    assert current.task.status.state == TaskState.TASK_STATE_WORKING
    began = time.monotonic()
    cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    assert time.monotonic() - began < 30  # the sleep was stopped, not waited out
    async with asyncio.timeout(30):
        rest = [sent async for sent in subscription]
    assert rest[-1].status_update.status.state == TaskState.TASK_STATE_CANCELED
    assert rest[-1].status_update.status.message.parts[0].text == "cancelled over A2A"
    fetched = await client.get_task(GetTaskRequest(id=task_id))
    assert fetched.status.state == TaskState.TASK_STATE_CANCELED
    with pytest.raises(TaskNotCancelableError, match="already ended"):
        await client.cancel_task(CancelTaskRequest(id=task_id))


def test_agora_a2a_on_another_address_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    refused = _agora("a2a", "--host", "0.0.0.0", "--port", "0", env=_env(tmp_path))
    assert refused.returncode == 2, refused.stderr
    assert "needs a bearer token" in refused.stderr
    assert "AGORA_A2A_TOKEN" in refused.stderr
