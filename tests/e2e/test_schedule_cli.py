"""`agora schedule add|list|show|remove` as a user runs them, against `agora up` (its generated
credentials and permissions): the server fires the goal, the client identity manages it."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.test_cli import _agora, running_platform

__all__ = ["running_platform"]  # the fixture, used by name below


@pytest.mark.slow
def test_add_list_show_remove_a_schedule_and_it_submits_goals(
    running_platform: dict[str, str],
) -> None:
    env = running_platform
    past = _agora("schedule", "add", "late", "--at", "2020-01-01T00:00:00Z", "--", "x", env=env)
    assert past.returncode == 2
    assert "is in the past" in past.stderr

    added = _agora(
        "schedule",
        "add",
        "ticker",
        "--every",
        "1s",
        "--json",
        "--",
        "say tick",
        "--step",
        'echo:{"text": "tick"}',
        "--expect",
        "tick",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["schedule"] == "@every 1s"
    cron = _agora(
        "schedule",
        "add",
        "standup",
        "--cron",
        "0 9 * * MON-FRI",
        "--tz",
        "Europe/Berlin",
        "--",
        "standup notes",
        env=env,
    )
    assert cron.returncode == 0, cron.stderr

    listed = _agora("schedule", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"ticker", "standup"}
    assert (rows["standup"]["schedule"], rows["standup"]["time_zone"]) == (
        "0 0 9 * * MON-FRI",
        "Europe/Berlin",
    )
    shown = _agora("schedule", "show", "ticker", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["goal"]["steps"] == [{"tool": "echo", "args": {"text": "tick"}}]

    # The server fires it, the planner admits each firing once, and the goals complete.
    sql = "SELECT count(*) AS n FROM goals WHERE text = 'say tick' AND status = 'completed'"
    deadline = time.monotonic() + 60
    while True:
        result = _agora("query", sql, "--format", "json", env=env)
        assert result.returncode == 0, result.stderr
        if json.loads(result.stdout)[0]["n"] >= 2:
            break
        assert time.monotonic() < deadline, "no scheduled goal completed"
        time.sleep(0.2)

    removed = _agora("schedule", "remove", "ticker", env=env)
    assert removed.returncode == 0, removed.stderr
    assert _agora("schedule", "show", "ticker", env=env).returncode == 1
    again = _agora("schedule", "remove", "ticker", env=env)
    assert again.returncode == 1
    assert "no schedule 'ticker'" in again.stderr
    left = json.loads(_agora("schedule", "list", "--json", env=env).stdout)
    assert [row["name"] for row in left] == ["standup"]
