"""MCP tools as a user meets them: `agora up` with `AGORA_MCP_SERVERS` (mcp-server-time over
stdio), each service its own process with its own NATS identity, then `agora tools`,
`agora goal --step … --allow … --wait` and `agora rerun`, the README's commands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import AGORA, _agora, _env

TOOL = "time.get_current_time"


@pytest.fixture
def platform_with_time(tmp_path: Path) -> Iterator[dict[str, str]]:
    time_server = {"command": sys.executable, "args": ["-m", "mcp_server_time"]}
    env = {**_env(tmp_path), "AGORA_MCP_SERVERS": json.dumps({"mcpServers": {"time": time_server}})}
    up = subprocess.Popen([*AGORA, "up"], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert up.poll() is None, "agora up exited early"
            assert time.monotonic() < deadline, "the time server's tools were never listed"
            listed = _agora("tools", "--json", env=env)
            if listed.returncode == 0 and TOOL in {
                t["name"] for t in json.loads(listed.stdout)["tools"]
            }:
                break
            time.sleep(0.2)
        yield env
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0


@pytest.mark.slow
def test_a_goal_on_an_mcp_tool_from_the_command_line(
    platform_with_time: dict[str, str],
) -> None:
    env = platform_with_time
    listed = json.loads(_agora("tools", "--json", env=env).stdout)
    [server] = listed["servers"]
    assert (server["server"], server["transport"], server["problem"]) == ("time", "stdio", None)

    ungranted = _agora(
        "goal", "time", "--step", f'{TOOL}:{{"timezone": "Asia/Tokyo"}}', "--wait", env=env
    )
    assert ungranted.returncode == 1
    assert "untrusted (mcp:time)" in ungranted.stdout + ungranted.stderr

    result = _agora(
        "goal",
        "the time in Tokyo",
        "--goal-id",
        "cli-mcp",
        "--step",
        f'{TOOL}:{{"timezone": "Asia/Tokyo"}}',
        "--allow",
        TOOL,
        "--expect",
        "Asia/Tokyo",
        "--wait",
        "--json",
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["type"] == "goal_completed"
    done = next(line for line in lines if line.get("type") == "task_completed")
    assert done["structured"]["timezone"] == "Asia/Tokyo"

    rerun = _agora("rerun", "cli-mcp", "--service", "executor", "--json", env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert json.loads(rerun.stdout)["identical"] is True
