"""`agora trajectory GOAL --timeline` as a user runs it, against `agora up`: a DAG whose first
two steps run in parallel, drawn in a wide and a narrow terminal, and read through `| head`."""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_cli import _agora, into_a_closed_pipe, running_platform

__all__ = ["running_platform"]  # the fixture, shared with test_cli

PARALLEL = [
    "goal",
    "two sleeps side by side, then join",
    "--goal-id",
    "g-gantt",
    "--step",
    'a=sleep:{"seconds": 0.4}',
    "--step",
    'b=sleep:{"seconds": 0.2}',
    "--step",
    'c<a,b=echo:{"text": "joined"}',
    "--expect",
    "joined",
    "--wait",
]


@pytest.mark.slow
def test_the_timeline_of_a_goal_draws_its_parallel_steps(
    running_platform: dict[str, str],
) -> None:
    env = running_platform
    done = _agora(*PARALLEL, env=env)
    assert done.returncode == 0, done.stdout + done.stderr

    wide = _agora("trajectory", "g-gantt", "--timeline", "--width", "120", env=env)
    assert wide.returncode == 0, wide.stderr
    lines = wide.stdout.splitlines()
    assert lines[0].startswith("goal g-gantt · completed · ")
    assert "3 tool calls" in lines[0]
    rows = {line.split(" ", 2)[0] + " " + line.split(" ", 2)[1]: line for line in lines[2:]}
    a, b, c = rows["a sleep"], rows["b sleep"], rows["c echo"]
    # Side by side: a and b start together, a runs about twice as long, c after both.
    # (a bar's first cell may be a partial one, ░, when it starts a fraction of a cell late)
    start = re.compile("[░█]")
    assert start.search(a).start() == start.search(b).start()  # type: ignore[union-attr]
    assert 1.5 < a.count("█") / b.count("█") < 2.5
    assert c.index("█") >= a.rindex("█")
    assert "completed" in a
    assert "ms" in a
    assert "goal completed" in wide.stdout
    assert all(len(line) <= 120 for line in lines)

    # The terminal's own width (COLUMNS, as a narrow terminal sets it) when none is given.
    narrow = _agora("trajectory", "g-gantt", "--timeline", env={**env, "COLUMNS": "40"})
    assert narrow.returncode == 0, narrow.stderr
    assert all(len(line) <= 40 for line in narrow.stdout.splitlines())
    assert "completed" in narrow.stdout

    # `| head -1` that has already gone when the chart is written: no traceback, the shell's
    # 141. (The reader closes before the command has read the log, so the write must fail.)
    code, stderr = into_a_closed_pipe("trajectory", "g-gantt", "--timeline", env=env)
    assert code == 141, stderr
    assert b"Traceback" not in stderr

    unknown = _agora("trajectory", "g-nothing", "--timeline", env=env)
    assert unknown.returncode == 2
    assert "no events for goal g-nothing" in unknown.stderr
