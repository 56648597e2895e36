"""`agora cancel`, `agora pause`, `agora resume` and `agora message` as a user runs them,
against `agora up` (with its generated credentials and permissions): real processes, real exit
codes."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.test_cli import _agora, running_platform

__all__ = ["running_platform"]  # the fixture, used by name below


def _query(sql: str, env: dict[str, str]) -> list[dict[str, object]]:
    result = _agora("query", sql, "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def _until(sql: str, expected: list[dict[str, object]], env: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while (rows := _query(sql, env)) != expected:
        assert time.monotonic() < deadline, f"{sql}: {rows}, waiting for {expected}"
        time.sleep(0.1)


@pytest.mark.slow
def test_pause_resume_and_cancel_a_running_goal_from_the_command_line(
    running_platform: dict[str, str],
) -> None:
    env = running_platform
    submitted = _agora(
        "goal",
        "a long sleep",
        "--goal-id",
        "cli-steer",
        "--step",
        'sleep:{"seconds": 60}',
        "--step",
        'echo:{"text": "never"}',
        env=env,
    )
    assert submitted.returncode == 0, submitted.stderr
    task = "SELECT task_id, status FROM tasks WHERE goal_id = 'cli-steer'"
    # A 60 s sleep is longer than the durable-timer threshold: it waits holding no process.
    _until(task, [{"task_id": "s1", "status": "waiting"}], env)

    paused = _agora("pause", "cli-steer", "--reason", "lunch", env=env)
    assert paused.returncode == 0, paused.stdout + paused.stderr
    assert "paused: lunch" in paused.stdout
    twice = _agora("pause", "cli-steer", env=env)
    assert twice.returncode == 1
    assert "already paused" in twice.stderr
    resumed = _agora("resume", "cli-steer", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["type"] == "goal_resumed"

    began = time.monotonic()
    cancelled = _agora("cancel", "cli-steer", "--reason", "not needed", env=env)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert "cancelled: not needed" in cancelled.stdout
    # Every executor hears the cancellation (its permissions let it follow goal_cancelled):
    # the 60 s sleep's timer wakes its task now, and the task ends cancelled.
    _until(task, [{"task_id": "s1", "status": "cancelled"}], env)
    assert time.monotonic() - began < 20
    _until("SELECT status FROM goals WHERE goal_id = 'cli-steer'", [{"status": "cancelled"}], env)

    again = _agora("cancel", "cli-steer", env=env)
    assert again.returncode == 1
    assert "already cancelled" in again.stderr
    unknown = _agora("cancel", "cli-nobody", env=env)
    assert unknown.returncode == 1
    assert "no goal cli-nobody exists" in unknown.stderr
    dotted = _agora("cancel", "g.with.dots", env=env)
    assert dotted.returncode == 2
    assert "one subject token" in dotted.stderr

    # Input while a goal runs: the goal chose interrupt, so the message stops its durable
    # sleep (the executor follows iteration_interrupted) and the revision plans the message.
    submitted = _agora(
        "goal",
        "sleep, unless told otherwise",
        "--goal-id",
        "cli-message",
        "--on-message",
        "interrupt",
        "--step",
        'sleep:{"seconds": 60}',
        env=env,
    )
    assert submitted.returncode == 0, submitted.stderr
    waiting = "SELECT task_id, status FROM tasks WHERE goal_id = 'cli-message' AND iteration = 1"
    _until(waiting, [{"task_id": "s1", "status": "waiting"}], env)
    told = _agora("message", "cli-message", "echo switched", env=env)
    assert told.returncode == 0, told.stdout + told.stderr
    assert "iteration 1 interrupted by a message" in told.stdout
    _until(waiting, [{"task_id": "s1", "status": "cancelled"}], env)
    finished = "SELECT status, result FROM goals WHERE goal_id = 'cli-message'"
    _until(finished, [{"status": "completed", "result": "switched"}], env)
    refused = _agora("message", "cli-steer", "echo late", env=env)
    assert refused.returncode == 1
    assert "already cancelled" in refused.stderr
