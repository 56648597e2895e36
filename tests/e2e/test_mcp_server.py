"""agora as an MCP server, as an MCP host meets it: the official `mcp` client against
`agora mcp` over stdio and over Streamable HTTP (`agora mcp --http`, with its bearer token),
both against `agora up` with its generated credentials and permissions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from infra.mcp_server.server import TOOL_NAMES
from tests.e2e.test_cli import AGORA, _agora, _env

TOKEN = "s3cret-token-for-the-mcp-test-0123456789"
Progress = list[tuple[float, float | None, str | None]]


@pytest.fixture(scope="module")
def platform_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    data_dir = tmp_path_factory.mktemp("agora")
    env = _env(data_dir)
    up = subprocess.Popen([*AGORA, "up"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _agora("query", "SELECT count(*) FROM goals", env=env).returncode != 0:
        assert up.poll() is None, "agora up exited early"
        assert time.monotonic() < deadline, "agora up's projector never answered"
        time.sleep(0.1)  # polling another process's readiness, with a deadline
    yield env
    up.send_signal(signal.SIGINT)
    assert up.wait(30) == 0


def _structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return result.structured_content


def _text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def _command(goal_id: str) -> dict[str, Any]:
    return {
        "text": "multiply then report",
        "goal_id": goal_id,
        "command_id": f"c-{goal_id}",
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


async def _submit_wait_query(client: Client, goal_id: str) -> dict[str, Any]:
    """What every transport must do: list, submit (idempotently), wait with progress, query,
    and refuse hostile SQL."""
    listed = await client.list_tools()
    assert {tool.name for tool in listed.tools} == set(TOOL_NAMES)

    first = _structured(await client.call_tool("submit_goal", _command(goal_id)))
    assert (first["goal_id"], first["duplicate"]) == (goal_id, False)
    again = _structured(await client.call_tool("submit_goal", _command(goal_id)))
    assert (again["goal_id"], again["duplicate"]) == (goal_id, True)

    progress: Progress = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    outcome = _structured(
        await client.call_tool("wait_goal", {"goal_id": goal_id}, progress_callback=on_progress)
    )
    assert outcome["status"] == "completed", outcome
    assert "391" in outcome["result"]
    # One notification per event, in order, the last one the outcome.
    assert len(progress) == outcome["events"] >= 5
    assert [value for value, _, _ in progress] == list(range(1, len(progress) + 1))
    assert str(progress[0][2]).startswith("goal_accepted")
    assert str(progress[-1][2]).startswith("goal_completed")

    rows = _structured(
        await client.call_tool(
            "query",
            {
                "sql": f"SELECT status, result FROM goals WHERE goal_id = '{goal_id}'",
                "min_seq": outcome["last_seq"],
            },
        )
    )["rows"]
    assert rows == [{"status": "completed", "result": outcome["result"]}]

    for hostile in (
        "DROP TABLE goals",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT 1; DELETE FROM goals",
        "ATTACH '/tmp/x.duckdb' AS x",
    ):
        refused = await client.call_tool("query", {"sql": hostile})
        assert refused.is_error, hostile
        assert "refused" in _text(refused), _text(refused)
    count = _structured(await client.call_tool("query", {"sql": "SELECT count(*) AS n FROM goals"}))
    assert count["rows"][0]["n"] >= 1  # still there
    return outcome


@pytest.mark.slow
async def test_agora_mcp_over_stdio(platform_env: dict[str, str]) -> None:
    env = {**platform_env, "PYTHONPATH": os.pathsep.join(sys.path)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "infra.cli", "mcp"], env=env)
    async with Client(params) as client:
        outcome = await _submit_wait_query(client, "mcp-stdio")

        goal = _structured(await client.call_tool("get_goal", {"goal_id": "mcp-stdio"}))
        assert goal["goal"]["status"] == "completed"
        assert [t["task_id"] for t in goal["tasks"]] == ["a", "b"]
        steps = _structured(
            await client.call_tool(
                "trajectory", {"goal_id": "mcp-stdio", "min_seq": outcome["last_seq"]}
            )
        )["steps"]
        assert steps[-1]["type"] == "goal_completed"
        assert len(steps) == outcome["events"]

        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "agora://views/goals/schema" in resources
        assert "agora://views/trajectory/schema" in resources
        read = await client.read_resource("agora://views/goals/schema")
        schema = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        columns = {c["name"]: c["type"] for c in schema["columns"]}
        assert columns["goal_id"] == "VARCHAR"
        assert {"status", "result", "submitted_at"} <= columns.keys()

        deadline = time.monotonic() + 30
        while True:  # memory indexes the completed tasks on its own time
            found = _structured(
                await client.call_tool("memory_search", {"query": "the answer is", "k": 5})
            )["items"]
            if any("391" in item["text"] for item in found):
                break
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.1)
        assert any(item["goal_id"] == "mcp-stdio" for item in found)

        await _cancel_a_running_goal(client)


async def _cancel_a_running_goal(client: Client) -> None:
    command = {"text": "a long sleep", "goal_id": "mcp-cancel"}
    command["steps"] = [{"tool": "sleep", "args": {"seconds": 60}}]  # type: ignore[assignment]
    _structured(await client.call_tool("submit_goal", command))
    running = "SELECT status FROM tasks WHERE goal_id = 'mcp-cancel'"
    deadline = time.monotonic() + 30
    while _structured(await client.call_tool("query", {"sql": running}))["rows"] != [
        {"status": "waiting"}  # on its durable timer: a 60 s sleep holds no process
    ]:
        assert time.monotonic() < deadline, "the sleep never started"
        await asyncio.sleep(0.1)
    answer = _structured(
        await client.call_tool("cancel_goal", {"goal_id": "mcp-cancel", "reason": "not needed"})
    )
    assert (answer["answered"], answer["answer"]) == (True, "goal_cancelled")
    began = time.monotonic()
    ended = _structured(
        await client.call_tool("wait_goal", {"goal_id": "mcp-cancel", "timeout_s": 30})
    )
    assert (ended["status"], ended["reason"]) == ("cancelled", "not needed")
    assert time.monotonic() - began < 30  # the sleep was stopped, not waited out
    unknown = _structured(await client.call_tool("cancel_goal", {"goal_id": "no-such-goal"}))
    assert unknown["answer"] == "command_rejected"


@asynccontextmanager
async def _agora_mcp_http(env: dict[str, str], *args: str) -> AsyncIterator[tuple[str, str]]:
    """`agora mcp --http` on a free port: its URL, and what it said on stderr up to that."""
    proc = await asyncio.create_subprocess_exec(
        *AGORA, "mcp", "--http", "--port", "0", *args, env=env, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    said = ""
    try:
        async with asyncio.timeout(30):
            while "Streamable HTTP on " not in said:
                line = (await proc.stderr.readline()).decode()
                assert line, f"agora mcp --http ended: {said}"
                said += line
        yield said.split("Streamable HTTP on ")[1].split()[0], said
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            said += (await proc.stderr.read()).decode()
            await proc.wait()
        assert TOKEN not in said  # never logged


@pytest.mark.slow
async def test_agora_mcp_over_streamable_http_with_its_bearer_token(
    platform_env: dict[str, str], tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    env = {**platform_env, "AGORA_MCP_TOKEN_FILE": str(token_file)}
    async with _agora_mcp_http(env) as (url, announced):
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/mcp")
        assert f"bearer token from {token_file}" in announced
        assert f"chmod 600 {token_file}" in announced  # a token others can read: said
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
        headers = {"Accept": "application/json, text/event-stream"}
        async with httpx2.AsyncClient() as http:
            for auth in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}):
                refused = await http.post(url, json=initialize, headers={**headers, **auth})
                assert refused.status_code == 401, refused.text
                assert refused.headers["www-authenticate"].startswith("Bearer")

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx2.AsyncClient(headers=bearer, timeout=httpx2.Timeout(30, read=300)) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            assert client.protocol_version == "2026-07-28"
            await _submit_wait_query(client, "mcp-http")


@pytest.mark.slow
async def test_http_on_loopback_without_a_token_makes_one_only_its_owner_reads(
    platform_env: dict[str, str],
) -> None:
    async with _agora_mcp_http(platform_env) as (url, announced):
        token_path = Path(platform_env["AGORA_DATA_DIR"]) / "mcp" / "token"
        assert str(token_path) in announced
        assert token_path.stat().st_mode & 0o777 == 0o600
        token = token_path.read_text().strip()
        bearer = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=bearer) as http,
            # A host of the handshake era: the initialize handshake at 2025-11-25.
            Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
        ):
            assert client.protocol_version == "2025-11-25"
            assert {t.name for t in (await client.list_tools()).tools} == set(TOOL_NAMES)
            one = _structured(await client.call_tool("query", {"sql": "SELECT 1 AS one"}))
            assert one["rows"] == [{"one": 1}]
        async with httpx2.AsyncClient() as http:
            assert (await http.post(url, json={})).status_code == 401


def test_http_on_another_address_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    result = _agora("mcp", "--http", "--host", "0.0.0.0", "--port", "0", env=_env(tmp_path))
    assert result.returncode == 2
    assert "needs a bearer token" in result.stderr
    assert "AGORA_MCP_TOKEN" in result.stderr
