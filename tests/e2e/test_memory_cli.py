"""`agora memory search|stats|forget` as a user runs them, against `agora up`."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import AGORA, _agora, _env


@pytest.fixture
def platform_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = _env(tmp_path)
    up = subprocess.Popen([*AGORA, "up"], env=env, stdout=subprocess.DEVNULL)
    discovery = tmp_path / "nats" / "server.json"
    deadline = time.monotonic() + 30
    while not discovery.exists():
        assert up.poll() is None, "agora up exited early"
        assert time.monotonic() < deadline, "agora up did not start its server"
        time.sleep(0.05)  # polling for a file another process writes, with a deadline
    yield env
    up.send_signal(signal.SIGINT)
    assert up.wait(30) == 0


def _search(env: dict[str, str], query: str) -> list[dict[str, object]]:
    result = _agora("memory", "search", query, "--json", env=env)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert isinstance(found, list)
    return found


@pytest.mark.slow
def test_search_stats_and_forget_from_the_command_line(platform_env: dict[str, str]) -> None:
    env = platform_env
    done = _agora(
        "goal", "note the code", "--step", 'echo:{"text": "the launch code name is BLUE HERON"}',
        "--wait", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    [found] = _search(env, "launch code name")
    assert "BLUE HERON" in str(found["text"])
    stats = _agora("memory", "stats", "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["items"] == 1

    forgot = _agora("memory", "forget", str(found["key"]), "--reason", "test", env=env)
    assert forgot.returncode == 0, forgot.stderr
    deadline = time.monotonic() + 30
    while _search(env, "launch code name"):
        assert time.monotonic() < deadline, "the item was still recalled after forget"
        time.sleep(0.1)  # polling another process's state, with a deadline

    both = _agora("memory", "forget", "k", "--goal", "g", env=env)
    assert both.returncode == 2
    assert "not both" in both.stderr
