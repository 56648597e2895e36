"""A remote A2A agent as a tool: real agents of the official SDK over real HTTP
(tests/a2a_agents.py), delegated to by goals on a real platform; the delegation recorded,
granted, approved, re-run from the record, and its faults ending in a retry or a clear
task_failed while other goals go on."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import (
    ApprovalDenied,
    ApprovalRequested,
    GoalCompleted,
    GoalFailed,
    GoalRejected,
    TaskCompleted,
    TaskFailed,
    ToolCalled,
    ToolFailed,
)
from infra.cli.rerun import rerun_goal
from infra.clients.goals import AgoraClient
from infra.settings import Settings
from tests.a2a_agents import serve_agents
from tests.integration.test_llm_goal import agora
from tests.integration.test_mcp_tools import _running
from tests.support import all_events, wait_until

TOKEN = "s3cret-token-for-the-helper-agent"


def _goal(goal_id: str, *steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"goal_id": goal_id, "text": goal_id, "steps": list(steps), "max_iterations": 1, **extra}


def _delegate(agent: str, text: str, **extra: Any) -> dict[str, Any]:
    tool = f"a2a.{agent}"
    return {"tool": tool, "args": {"text": text}, "allowed_tools": [tool], **extra}


def _task_failure(events: list[Any]) -> TaskFailed:
    assert isinstance(events[-1], GoalFailed), events[-1]
    return next(e for e in events if isinstance(e, TaskFailed))


async def test_goals_delegate_to_a2a_agents_faults_are_clear_and_reruns_call_no_agent(
    settings: Settings,
    nc: NatsClient,
    client: AgoraClient,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    token_file = tmp_path / "helper.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    async with serve_agents(TOKEN) as agents:
        configured = {
            "helper": {
                "card_url": agents.card_url("helper"),
                "bearer_token_file": str(token_file),
            },
            "junk": {"card_url": agents.card_url("junk")},
            "down": {"card_url": agents.card_url("down")},
            "later": {"card_url": agents.card_url("later")},
        }
        live = replace(settings, a2a_agents=json.dumps({"a2aAgents": configured}))
        async with _running(live, listed=set(configured)):
            ask = _delegate("helper", "summarize agora", id="ask")
            ask["args"]["data"] = {"about": "agora"}
            await client.submit(
                _goal(
                    "g-a2a",
                    ask,
                    {
                        "id": "say",
                        "tool": "echo",
                        "args": {"text": "it said: {{steps.ask.output}}"},
                        "depends_on": ["ask"],
                    },
                    expect={"contains": "helped with: summarize agora"},
                )
            )
            ungranted = {"tool": "a2a.helper", "args": {"text": "x"}}
            await client.submit(_goal("g-a2a-ungranted", ungranted))
            await client.submit(
                _goal(
                    "g-a2a-approval", _delegate("helper", "wait"), approval={"require": ["a2a.*"]}
                )
            )
            await client.submit(_goal("g-a2a-refused", _delegate("helper", "refuse")))
            await client.submit(_goal("g-a2a-hangs", _delegate("helper", "hang", timeout_s=2)))
            await client.submit(_goal("g-a2a-junk", _delegate("junk", "anything")))
            await client.submit(_goal("g-a2a-down", _delegate("down", "anything")))
            await client.submit(_goal("g-a2a-later", _delegate("later", "take your time")))
            await client.submit(_goal("g-beside", {"tool": "echo", "args": {"text": "fine"}}))

            async def approval_asked() -> bool:
                return any(
                    isinstance(e, ApprovalRequested)
                    for _, e in await client.recorded("g-a2a-approval")
                )

            await wait_until(approval_asked, what="the delegation to wait for a person")
            [asked] = [
                e
                for _, e in await client.recorded("g-a2a-approval")
                if isinstance(e, ApprovalRequested)
            ]
            await client.answer_approval(asked.approval_id, "deny", reason="not today")
            outcomes = {
                goal_id: await client.wait_for_outcome(goal_id, timeout_s=60)
                for goal_id in (
                    "g-a2a",
                    "g-a2a-ungranted",
                    "g-a2a-approval",
                    "g-a2a-refused",
                    "g-a2a-hangs",
                    "g-a2a-junk",
                    "g-a2a-down",
                    "g-a2a-later",
                    "g-beside",
                )
            }

            async def hung_tasks_cancelled() -> bool:
                return len(agents.helper.cancelled) == agents.helper.calls.count("hang")

            # A timed-out attempt asks the agent to cancel its task (every attempt whose task
            # the agent had started: on a loaded machine a message may be late for its 2 s).
            await wait_until(hung_tasks_cancelled, what="the agent to hear the cancels")
            assert agents.helper.cancelled

        delegated = outcomes["g-a2a"]
        assert isinstance(delegated[-1], GoalCompleted), delegated[-1]
        called = next(e for e in delegated if isinstance(e, ToolCalled))
        assert (called.tool, called.args) == (
            "a2a.helper",
            {"text": "summarize agora", "data": {"about": "agora"}},
        )
        done = next(e for e in delegated if isinstance(e, TaskCompleted) and e.task_id == "ask")
        assert done.output == 'helped with: summarize agora\n\n{"about": "agora"}'
        assert done.structured is not None
        assert done.structured["state"] == "completed"
        assert [a["name"] for a in done.structured["artifacts"]] == ["answer", "data"]
        assert "it said: helped with: summarize agora" in delegated[-1].result

        rejected = outcomes["g-a2a-ungranted"][-1]
        assert isinstance(rejected, GoalRejected)
        assert "a2a.helper is untrusted (a2a:helper)" in rejected.reason
        waited = outcomes["g-a2a-approval"]
        assert isinstance(waited[-1], GoalFailed), waited[-1]
        [denied] = [e for e in waited if isinstance(e, ApprovalDenied)]
        assert (denied.tool, denied.reason) == ("a2a.helper", "not today")
        assert not any(isinstance(e, ToolCalled) for e in waited)
        refused = _task_failure(outcomes["g-a2a-refused"])
        assert refused.error.startswith("A2A agent helper failed task ")
        assert refused.error.endswith(": I do not do that")
        assert (refused.transient, refused.attempts) == (False, 1)
        hung = _task_failure(outcomes["g-a2a-hangs"])
        assert (hung.error, hung.attempts) == ("tool a2a.helper timed out after 2s", 3)
        junk = _task_failure(outcomes["g-a2a-junk"])
        assert "A2A agent junk answered with something that is not A2A" in junk.error
        assert (junk.transient, junk.attempts) == (False, 1)
        down = outcomes["g-a2a-down"]
        failures = [e for e in down if isinstance(e, ToolFailed)]
        assert len(failures) == 3
        assert all(f.transient and "A2A agent down cannot be reached" in f.error for f in failures)
        assert _task_failure(down).attempts == 3
        # An agent that answers before its task has ended is asked again until it has.
        polled = outcomes["g-a2a-later"]
        assert isinstance(polled[-1], GoalCompleted), polled[-1]
        assert next(e for e in polled if isinstance(e, TaskCompleted)).output == "later done"
        assert agents.asked_later == ["SendMessage", "GetTask", "GetTask"]
        assert isinstance(outcomes["g-beside"][-1], GoalCompleted)
        # Goals run side by side: the agent heard each once (the hung one once per attempt),
        # and never the call that was denied.
        calls = sorted(agents.helper.calls)
        assert [c for c in calls if c != "hang"] == ["refuse", "summarize agora"]
        assert 1 <= calls.count("hang") <= 3

        # Re-run: answered from the record, the agent (still up) not called again.
        report = await rerun_goal(settings, "g-a2a", service="executor")
        assert report.identical, report.differences
        assert report.recorded == report.rerun_decisions > 0
        assert sorted(agents.helper.calls) == calls

    # What a user sees: the agent's tool with its origin, the card's URL (no token).
    env = {**os.environ, **live.to_env(), "AGORA_LOG_LEVEL": "error"}
    code, stdout, stderr = await agora("tools", "--json", env=env)
    assert code == 0, stderr
    listed = json.loads(stdout)
    [helper] = [t for t in listed["tools"] if t["name"] == "a2a.helper"]
    assert (helper["origin"], helper["trusted"]) == ("a2a:helper", False)
    assert helper["args"]["required"] == ["text"]
    servers = {s["server"]: s for s in listed["servers"]}
    assert servers["helper"]["transport"] == "a2a-jsonrpc"
    assert servers["helper"]["where"] == agents.card_url("helper")
    assert servers["helper"]["protocol_version"] == "1.0"
    assert (servers["helper"]["origin"], servers["junk"]["origin"]) == ("a2a:helper", "a2a:junk")
    code, table, stderr = await agora("tools", env=env)
    assert code == 0, stderr
    assert b"A2A agent helper (a2a-jsonrpc" in table
    # The token is nowhere: not in the log, not in what was printed, not under the data dir.
    log = await all_events(nc)
    assert not any(TOKEN.encode() in msgspec.json.encode(e) for e in log)
    printed = capfd.readouterr()
    assert TOKEN not in printed.out + printed.err + stdout.decode() + table.decode()
    stored = [p for p in settings.data_dir.rglob("*") if p.is_file() and p != token_file]
    assert not any(TOKEN.encode() in p.read_bytes() for p in stored)
