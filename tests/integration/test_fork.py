"""``agora fork``: a new goal from an old goal's state at a stream sequence, on a real JetStream;
the old goal is never touched."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from nats.aio.client import Client as NatsClient

from events.catalog import GoalAccepted, GoalCompleted, TaskCompleted, TaskScheduled
from events.codec import encode
from events.subjects import goal_events_filter
from infra.bus.history import read_events
from infra.cli.fork import fork_goal
from infra.cli.rerun import rerun_goal
from infra.clients.goals import AgoraClient
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import all_events

THREE_STEPS = {
    "text": "three steps",
    "steps": [
        {"tool": "calculator", "args": {"expression": "2+3"}},
        {"tool": "echo", "args": {"text": "got {{steps.s1.output}}"}},
        {"tool": "echo", "args": {"text": "then {{steps.s2.output}}"}},
    ],
    "expect": {"contains": "then got 5"},
}


async def test_a_fork_runs_what_was_left_and_leaves_the_original_untouched(
    settings: Settings, nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    original = await client.submit(THREE_STEPS)
    await client.wait_for_outcome(original.goal_id, timeout_s=30)
    stored = [pair async for pair in read_events(nc, goal_events_filter(original.goal_id))]
    at_seq = next(seq for seq, e in stored if isinstance(e, TaskCompleted) and e.task_id == "s1")
    before = [encode(e) for _, e in stored]

    submitted = await fork_goal(nc, original.goal_id, at_seq)
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)

    assert submitted.goal_id == f"{original.goal_id}-fork-{at_seq}"
    outcome = events[-1]
    assert isinstance(outcome, GoalCompleted), outcome
    assert outcome.result == "then got 5"
    accepted = events[0]
    assert isinstance(accepted, GoalAccepted)
    assert accepted.forked_from is not None
    assert (accepted.forked_from.goal_id, accepted.forked_from.at_seq) == (
        original.goal_id,
        at_seq,
    )
    # s1 completed before the fork point: carried, not run again.
    assert [e.task_id for e in events if isinstance(e, TaskScheduled)] == ["s2", "s3"]
    after = [encode(e) for e in await all_events(nc, goal_events_filter(original.goal_id))]
    assert after == before  # the original goal: not one event added or changed
    # Both re-run without a difference, whichever service (rule-based: no LLM anywhere).
    for goal_id in (original.goal_id, submitted.goal_id):
        for service in ("planner", "executor", "evaluator"):
            report = await rerun_goal(settings, goal_id, service=service)
            assert report.identical, (goal_id, service, report.differences)
            assert report.rerun_decisions > 0

    # The command line, with a new text: another goal, planned from the same state.
    assert settings.nats_urls is not None
    env = {**os.environ, **settings.to_env(), "AGORA_LOG_LEVEL": "error"}
    fork_args = ["fork", original.goal_id, "--at-seq", str(at_seq)]
    fork_args += ["--text", "three steps, told differently"]
    code, stdout, stderr = await _agora(*fork_args, "--wait", "--json", env=env)
    assert code == 0, stderr
    second = json.loads(stdout.splitlines()[0])["goal_id"]
    assert second != submitted.goal_id
    forked = await client.wait_for_outcome(second, timeout_s=30)
    assert isinstance(forked[0], GoalAccepted)
    assert forked[0].text == "three steps, told differently"
    assert isinstance(forked[-1], GoalCompleted)
    assert [encode(e) for e in await all_events(nc, goal_events_filter(original.goal_id))] == before

    # The same fork asked again: the command says it exists already, and adds no goal.
    code, said, _ = await _agora(*fork_args, env=env)
    assert code == 0
    assert "already exists" in said.decode()
    assert second in said.decode()
    accepted = [
        e for e in await all_events(nc, goal_events_filter(second)) if isinstance(e, GoalAccepted)
    ]
    assert len(accepted) == 1


async def _agora(*args: str, env: dict[str, str]) -> tuple[int | None, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infra.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, stdout, stderr
