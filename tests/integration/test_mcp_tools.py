"""Tools from real MCP servers: planned with, called, recorded, re-run from the record, and
their faults ending in a retry or a clear task_failed while other goals go on.

Servers: ``mcp-server-time`` from PyPI over stdio (nobody here wrote it), a Streamable HTTP
server built with the official SDK (tests/mcp_servers/http_notes.py, bearer token from a
file), a stdio server of the SDK whose tools hang or get killed (faulty.py), and one that
answers garbage (broken.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import (
    GoalCompleted,
    GoalFailed,
    GoalRejected,
    PlanCreated,
    TaskCompleted,
    TaskFailed,
    ToolCalled,
    ToolFailed,
)
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.cli.rerun import rerun_goal
from infra.clients.goals import AgoraClient
from infra.mcp.catalogue import read_listings
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.integration.test_llm_goal import agora
from tests.support import all_events, wait_until

SERVERS = Path(__file__).parent.parent / "mcp_servers"
TIME = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}


def _stdio(script: str, *args: str, calls: Path, **extra: Any) -> dict[str, Any]:
    # A stdio server gets only a safe default environment (the SDK's) plus its "env".
    command = [str(SERVERS / script), *args]
    return {
        "command": sys.executable,
        "args": command,
        "env": {"MCP_TEST_DIR": str(calls)},
        **extra,
    }


def _with_servers(settings: Settings, servers: dict[str, Any]) -> Settings:
    return replace(settings, mcp_servers=json.dumps({"mcpServers": servers}))


@pytest.fixture
def calls_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "mcp"
    directory.mkdir()
    return directory


def _calls(directory: Path) -> list[str]:
    log = directory / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@contextlib.asynccontextmanager
async def _running(
    settings: Settings, listed: set[str] | None = None
) -> AsyncIterator[InProcessPlatform]:
    """The platform, once the executor has recorded the listing of every configured server
    (or of those ``listed``): what a user sees with `agora tools` before using them."""
    platform = InProcessPlatform(settings)
    platform.start()
    try:
        configured = json.loads(settings.mcp_servers or "{}").get("mcpServers", {})
        servers = set(configured) if listed is None else listed
        nc = await connect(settings, "agora-test-listings")
        try:

            async def all_listed() -> bool:
                return {e.server for e in await read_listings(nc) if e.tools} >= servers

            await wait_until(all_listed, what=f"listings of {sorted(servers)}")
        finally:
            await nc.close()
        yield platform
    finally:
        await platform.stop()


def _step(tool: str, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"tool": tool, "args": args, "allowed_tools": [tool], **extra}


# -- a real server from PyPI over stdio ----------------------------------------------------


async def test_a_goal_calls_mcp_server_time_and_its_rerun_needs_no_server(
    settings: Settings, client: AgoraClient
) -> None:
    live = _with_servers(settings, {"time": TIME})
    command = {
        "goal_id": "g-mcp-time",
        "text": "what time is it in Paris, then say it",
        "steps": [
            _step("time.get_current_time", {"timezone": "Europe/Paris"}, id="now"),
            {
                "id": "say",
                "tool": "echo",
                "args": {"text": "Paris: {{steps.now.output}}"},
                "depends_on": ["now"],
            },
        ],
        "expect": {"contains": "Europe/Paris"},
    }
    async with _running(live):
        await client.submit(command)
        events = await client.wait_for_outcome("g-mcp-time", timeout_s=60)
    assert isinstance(events[-1], GoalCompleted), events[-1]
    done = next(e for e in events if isinstance(e, TaskCompleted) and e.task_id == "now")
    assert done.tool == "time.get_current_time"
    # Structured content and text, both recorded.
    assert done.structured is not None
    assert done.structured["timezone"] == "Europe/Paris"
    assert json.loads(done.output)["timezone"] == "Europe/Paris"
    assert "Europe/Paris" in events[-1].result

    # Re-run with every agora process stopped and no MCP server configured at all: the
    # executor's decisions come back identical, answered from the record.
    for service in ("planner", "executor"):
        report = await rerun_goal(settings, "g-mcp-time", service=service)
        assert report.identical, report.differences
        assert report.recorded == report.rerun_decisions > 0


async def test_the_rule_planner_decomposes_text_naming_an_mcp_tool(
    settings: Settings, client: AgoraClient
) -> None:
    async with _running(_with_servers(settings, {"time": TIME})):
        await client.submit(
            {
                "goal_id": "g-mcp-rules",
                "text": 'time.get_current_time {"timezone": "Europe/Oslo"}, then summarize',
                "allowed_tools": ["time.get_current_time"],
                "expect": {"contains": "Europe/Oslo"},
            }
        )
        events = await client.wait_for_outcome("g-mcp-rules", timeout_s=60)
    assert isinstance(events[-1], GoalCompleted), events[-1]
    [plan] = [e for e in events if isinstance(e, PlanCreated)]
    assert plan.strategy == "decomposed"
    assert [(t.tool, t.args, t.allowed_tools) for t in plan.tasks] == [
        ("time.get_current_time", {"timezone": "Europe/Oslo"}, ("time.get_current_time",)),
        ("echo", {"text": "Summary: {{steps.s1.output}}"}, ()),
    ]
    assert events[-1].result.startswith("Summary: {")


async def test_an_untrusted_tool_without_a_grant_is_rejected_at_intake(
    settings: Settings, client: AgoraClient
) -> None:
    async with _running(_with_servers(settings, {"time": TIME})):
        await client.submit(
            {
                "goal_id": "g-mcp-ungranted",
                "text": "time, not granted",
                "steps": [{"tool": "time.get_current_time", "args": {"timezone": "UTC"}}],
            }
        )
        events = await client.wait_for_outcome("g-mcp-ungranted", timeout_s=30)
    rejected = events[-1]
    assert isinstance(rejected, GoalRejected)
    assert "untrusted (mcp:time)" in rejected.reason
    assert '"allowed_tools": ["time.get_current_time"]' in rejected.reason
    # Nothing reached the executor, so nothing called the server.
    assert not [e for e in events if isinstance(e, ToolCalled)]


# -- Streamable HTTP, with a bearer token from a file -------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class HttpServer:
    url: str
    token_file: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def http_server(calls_dir: Path, tmp_path: Path) -> Iterator[HttpServer]:
    """The notes server on a free port, its token in a file."""
    port, token = _free_port(), "s3cret-token-for-notes"
    token_file = tmp_path / "notes.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.mcp_servers.http_notes", str(port)],
        env={**os.environ, "MCP_TEST_DIR": str(calls_dir), "MCP_TEST_TOKEN": token},
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        for _ in range(200):
            try:
                # Up: it answers (401 without the token).
                httpx.get(url, timeout=0.5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, "the MCP HTTP server exited"
                time.sleep(0.05)
        server = HttpServer(url, token_file, proc)
        yield server
    finally:
        HttpServer(url, token_file, proc).stop()


async def test_a_streamable_http_server_with_a_token_is_called_and_rerun_calls_it_not(
    settings: Settings,
    nc: NatsClient,
    client: AgoraClient,
    http_server: HttpServer,
    calls_dir: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    url, token_file = http_server.url, http_server.token_file
    live = _with_servers(settings, {"notes": {"url": url, "bearer_token_file": str(token_file)}})
    async with _running(live):
        await client.submit(
            {
                "goal_id": "g-mcp-http",
                "text": "look up a word",
                "steps": [_step("notes.lookup", {"word": "agora"})],
                "expect": {"contains": '"vowels": 3'},
            }
        )
        events = await client.wait_for_outcome("g-mcp-http", timeout_s=60)

        # The server disappears: calls fail as transient with the reason, the goal fails
        # clearly once its attempts are spent, and a goal beside it completes.
        http_server.stop()
        await client.submit(
            {
                "goal_id": "g-mcp-gone",
                "text": "gone",
                "steps": [_step("notes.lookup", {"word": "x"})],
            }
        )
        await client.submit(
            {
                "goal_id": "g-mcp-beside",
                "text": "beside",
                "steps": [{"tool": "echo", "args": {"text": "ok"}}],
            }
        )
        gone = await client.wait_for_outcome("g-mcp-gone", timeout_s=60)
        beside = await client.wait_for_outcome("g-mcp-beside", timeout_s=60)
    assert isinstance(events[-1], GoalCompleted), events[-1]
    assert isinstance(beside[-1], GoalCompleted)
    assert isinstance(gone[-1], GoalFailed)
    # Every attempt of every iteration failed, transient, each with its reason; after five
    # in a row the server's breaker opened, and calls failed fast.
    failures = [e for e in gone if isinstance(e, ToolFailed)]
    assert all(f.transient for f in failures)
    assert "notes closed the connection during the call of lookup (it went away" in (
        failures[0].error
    )
    unreachable = "MCP server notes (streamable-http) cannot be reached: ConnectError"
    assert all(unreachable in f.error for f in failures[1:5])
    assert failures[5].error.startswith("circuit open for mcp:notes (tool notes.lookup)")
    done = next(e for e in events if isinstance(e, TaskCompleted))
    assert done.structured == {"word": "agora", "length": 5, "vowels": 3}
    assert _calls(calls_dir) == ["notes lookup agora"]

    report = await rerun_goal(settings, "g-mcp-http", service="executor")
    assert report.identical, report.differences
    # The server is still up, and it was not called again.
    assert _calls(calls_dir) == ["notes lookup agora"]

    # What a user sees: the tool with its origin and schema, and the server (no token).
    env = {**os.environ, **live.to_env(), "AGORA_LOG_LEVEL": "error"}
    code, stdout, stderr = await agora("tools", "--json", env=env)
    assert code == 0, stderr
    listed = json.loads(stdout)
    [lookup] = [t for t in listed["tools"] if t["name"] == "notes.lookup"]
    assert (lookup["origin"], lookup["trusted"]) == ("mcp:notes", False)
    assert lookup["args"]["required"] == ["word"]
    assert {t["origin"] for t in listed["tools"] if t["name"] == "echo"} == {"builtin"}
    [notes] = listed["servers"]
    assert (notes["transport"], notes["where"], notes["problem"]) == ("streamable-http", url, None)
    assert b"s3cret-token" not in stdout
    code, stdout, stderr = await agora("schema", "--listed", env=env)
    assert code == 0, stderr
    assert json.loads(stdout)["tools"]["notes.lookup"]["origin"] == "mcp:notes"
    # The old name of the re-run, as the issue says it: nothing is called either.
    code, stdout, stderr = await agora("redrive", "g-mcp-http", "--service", "executor", env=env)
    assert code == 0, stderr + stdout
    assert _calls(calls_dir) == ["notes lookup agora"]
    # The token is nowhere: not in the log, not in what the services printed, not in a file
    # under the data directory (the NATS store, DuckDB).
    log = await all_events(nc)
    assert log
    assert not any(b"s3cret-token" in msgspec.json.encode(e) for e in log)
    printed = capfd.readouterr()
    assert "s3cret-token" not in printed.out + printed.err
    stored = [p for p in settings.data_dir.rglob("*") if p.is_file() and p != token_file]
    assert stored
    assert not any(b"s3cret-token" in p.read_bytes() for p in stored)


# -- faults -------------------------------------------------------------------------------


async def test_mcp_faults_end_in_a_retry_or_a_clear_failure_and_other_goals_go_on(
    settings: Settings, client: AgoraClient, calls_dir: Path
) -> None:
    live = _with_servers(
        settings,
        {
            "crashy": _stdio("faulty.py", "crashy", calls=calls_dir),
            "hangs": _stdio("faulty.py", "hangs", calls=calls_dir, timeout_s=1),
            "broken": _stdio("broken.py", calls=calls_dir),
        },
    )

    def goal(goal_id: str, *steps: dict[str, Any]) -> dict[str, Any]:
        return {"goal_id": goal_id, "text": goal_id, "steps": list(steps)}

    async with _running(live):
        # Killed mid-call (the call takes 5 s: ample time to kill it): the call fails as transient,
        # the retry starts the server again.
        await client.submit(goal("g-killed", _step("crashy.slow", {"seconds": 5})))

        async def first_call_running() -> bool:
            return any(line.startswith("crashy slow ") for line in _calls(calls_dir))

        await wait_until(first_call_running, what="the first call of crashy.slow")
        serving = next(line for line in _calls(calls_dir) if line.startswith("crashy slow "))
        os.kill(int(serving.split()[-1]), signal.SIGKILL)

        await client.submit(goal("g-hangs", _step("hangs.hang", {})))
        await client.submit(goal("g-garbage", _step("broken.garbage", {})))
        await client.submit(goal("g-off-schema", _step("broken.off_schema", {})))
        # Goals beside them, on built-in and on healthy MCP tools, are not disturbed.
        await client.submit(goal("g-beside", {"tool": "echo", "args": {"text": "fine"}}))
        await client.submit(goal("g-beside-mcp", _step("crashy.shout", {"text": "fine"})))

        outcomes = {
            goal_id: await client.wait_for_outcome(goal_id, timeout_s=60)
            for goal_id in (
                "g-killed",
                "g-hangs",
                "g-garbage",
                "g-off-schema",
                "g-beside",
                "g-beside-mcp",
            )
        }

    killed = outcomes["g-killed"]
    assert isinstance(killed[-1], GoalCompleted), killed[-1]
    failure = next(e for e in killed if isinstance(e, ToolFailed))
    assert failure.transient
    assert "crashy closed the connection during the call of slow" in failure.error
    assert next(e for e in killed if isinstance(e, TaskCompleted)).attempts == 2

    def task_failure(events: list[Any]) -> TaskFailed:
        assert isinstance(events[-1], GoalFailed), events[-1]
        return next(e for e in events if isinstance(e, TaskFailed))

    hung = task_failure(outcomes["g-hangs"])
    assert hung.error == "tool hangs.hang timed out after 1s"
    assert hung.attempts == 3

    garbage = task_failure(outcomes["g-garbage"])
    assert "broken answered the call of garbage with a result that is not valid MCP" in (
        garbage.error
    )
    assert not garbage.transient
    assert garbage.attempts == 1
    off_schema = task_failure(outcomes["g-off-schema"])
    assert "against the tool's own schema" in off_schema.error
    assert "'seven' is not of type 'integer'" in off_schema.error

    assert isinstance(outcomes["g-beside"][-1], GoalCompleted)
    beside = outcomes["g-beside-mcp"]
    assert isinstance(beside[-1], GoalCompleted)
    assert beside[-1].result == "FINE"


async def test_a_server_whose_tool_set_changes_fails_calls_of_a_gone_tool_clearly(
    settings: Settings, nc: NatsClient, client: AgoraClient, calls_dir: Path
) -> None:
    live = _with_servers(settings, {"shifty": _stdio("faulty.py", "shifty", calls=calls_dir)})

    def goal(goal_id: str, *steps: dict[str, Any]) -> dict[str, Any]:
        return {"goal_id": goal_id, "text": goal_id, "steps": list(steps)}

    async with _running(live):
        await client.submit(goal("g-retire", _step("shifty.retire", {"tool": "shout"})))
        assert isinstance(
            (await client.wait_for_outcome("g-retire", timeout_s=30))[-1], GoalCompleted
        )
        # Scheduled before the executor knew: the server refuses it, and the reason says so.
        await client.submit(goal("g-gone", _step("shifty.shout", {"text": "hi"})))
        gone = await client.wait_for_outcome("g-gone", timeout_s=30)

        async def relisted() -> bool:
            latest = [e for e in await read_listings(nc) if e.server == "shifty"][-1]
            return "shifty.shout" not in {tool.name for tool in latest.tools}

        await wait_until(relisted, what="shifty's new listing")
        # Now the planner knows: a goal naming the tool is rejected before anything runs.
        await client.submit(goal("g-after", _step("shifty.shout", {"text": "hi"})))
        after = await client.wait_for_outcome("g-after", timeout_s=30)
        # And the executor keeps serving the server's other tools.
        await client.submit(goal("g-still", _step("shifty.slow", {"seconds": 0})))
        still = await client.wait_for_outcome("g-still", timeout_s=30)

    failed = next(e for e in gone if isinstance(e, TaskFailed))
    assert failed.error.startswith("MCP tool shifty.shout reported an error: ")
    assert "Unknown tool: shout" in failed.error
    assert failed.attempts == 1
    rejected = after[-1]
    assert isinstance(rejected, GoalRejected)
    assert "unknown tool 'shifty.shout'" in rejected.reason
    assert isinstance(still[-1], GoalCompleted)
    assert still[-1].result == "slept 0.0s"


async def test_a_restarted_executor_records_an_unchanged_listing_no_second_time(
    settings: Settings, calls_dir: Path
) -> None:
    # A duplicate window shorter than the restart: the stream itself would not drop a repeat.
    short = replace(
        _with_servers(settings, {"crashy": _stdio("faulty.py", "crashy", calls=calls_dir)}),
        duplicate_window_s=0.5,
    )
    nc = await connect(short, "agora-test-restart")
    try:
        await provision(nc.jetstream(), short)
        client = AgoraClient(nc)
        for run in ("first", "second"):
            started = time.monotonic()
            async with _running(short):
                goal_id = f"g-restart-{run}"
                await client.submit(
                    {
                        "goal_id": goal_id,
                        "text": run,
                        "steps": [_step("crashy.shout", {"text": run})],
                    }
                )
                events = await client.wait_for_outcome(goal_id, timeout_s=30)
                assert isinstance(events[-1], GoalCompleted), events[-1]
            assert time.monotonic() - started > short.duplicate_window_s
        listings = [e for e in await read_listings(nc) if e.server == "crashy"]
        assert len(listings) == 1
    finally:
        await nc.close()


async def test_a_server_that_never_answers_at_start_keeps_no_tool_from_running(
    settings: Settings, nc: NatsClient, client: AgoraClient
) -> None:
    # A process that reads its stdin and never says a word: the handshake never completes.
    mute = {"command": sys.executable, "args": ["-c", "import sys; sys.stdin.read()"]}
    live = replace(_with_servers(settings, {"mute": mute, "time": TIME}), mcp_start_wait_s=1.0)
    async with _running(live, listed={"time"}):
        await client.submit(
            {
                "goal_id": "g-beside-mute",
                "text": "the time, and an echo",
                "steps": [
                    _step("time.get_current_time", {"timezone": "UTC"}),
                    {"tool": "echo", "args": {"text": "still here"}},
                ],
            }
        )
        events = await client.wait_for_outcome("g-beside-mute", timeout_s=60)
        # Served while the mute server's handshake is still pending: its connection attempt
        # has not even given up yet (nothing is recorded for it).
        assert not [e for e in await read_listings(nc) if e.server == "mute"]
    assert isinstance(events[-1], GoalCompleted), events[-1]
    assert events[-1].result == "still here"
