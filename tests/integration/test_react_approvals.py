"""Approvals of the calls a model chooses inside a ReAct task, on the real platform and a real
nats-server, over real HTTP to a scripted OpenAI-compatible provider.

One goal's write waits while every service is stopped and started again, is approved with an
edit (which is what runs, once), and the model's next write is denied; another goal's write
is denied by its deadline, delivered by nats-server. The model is never asked again for a
think it answered, and is shown each denial."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NatsClient

from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    GoalCompleted,
    ToolCalled,
)
from events.model import Event
from infra.clients.goals import AgoraClient
from infra.clients.query import ask
from infra.dashboard.queries import waiting_approvals_statement
from infra.platform.runner import producer_name
from infra.settings import Settings
from projections.timeline import build_timeline
from services.llm.templates import load_prompt
from services.rerun import RerunOptions, rerun_executor
from tests.conftest import InProcessPlatform
from tests.llm_servers import ReceivedRequest, Scripted, ScriptedLlmServer, llm_settings
from tests.llm_servers import openai_reply as reply
from tests.support import all_events, wait_until

ANSWERED = "g-react-answered"
TIMED_OUT = "g-react-timed-out"


def observations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


def goal_of(body: dict[str, Any]) -> str:
    """Which goal a request is for: its text or instruction names the goal."""
    return ANSWERED if ANSWERED in json.dumps(body["messages"]) else TIMED_OUT


def asks_for(body: dict[str, Any]) -> str | None:
    """The structured output a request asks for (``plan``, ``judgement``), or None: a think."""
    fmt = body.get("response_format") or {}
    return str(fmt["json_schema"]["name"]) if "json_schema" in fmt else None


def react_plan(goal_id: str) -> dict[str, Any]:
    task = {
        "id": "r1",
        "description": "save a draft",
        "tool": "react",
        "args": {"instruction": f"save a draft ({goal_id})"},
        "depends_on": [],
        "allowed_tools": ["echo", "write_file"],
    }
    return {"tasks": [task]}


def provider(request: ReceivedRequest) -> Scripted:
    """A plan of one ReAct task; the judge accepts; the agent echoes and writes a.txt, then (if
    that ran) writes b.txt, then answers with what it was last told."""
    body = request.body
    if asks_for(body) == "plan":
        return reply(json.dumps(react_plan(goal_of(body))))
    if asks_for(body) == "judgement":
        verdict = {"score": 0.9, "verdict": "accept", "feedback": "fine", "criteria": []}
        return reply(json.dumps(verdict))
    seen, goal = observations(body), goal_of(body)
    if not seen:
        write = {"path": f"{goal}/a.txt", "content": "draft"}
        return reply(None, tool_calls=[("echo", {"text": "before"}), ("write_file", write)])
    if len(seen) == 2 and seen[-1]["status"] == "returned":
        return reply(None, tool_calls=[("write_file", {"path": f"{goal}/b.txt", "content": "b"})])
    return reply(f"finished: {seen[-1]['status']}: {seen[-1].get('error', '')}")


def react_goal(goal_id: str, deadline_s: float) -> dict[str, Any]:
    return {
        "command_id": f"cmd-{goal_id}",
        "goal_id": goal_id,
        "text": f"save a draft for {goal_id}",
        "approval": {"require": ["write_file"], "deadline_s": deadline_s},
    }


async def agora(settings: Settings, *args: str) -> tuple[int, str]:
    """``agora ARGS``, the real command line, as its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infra.cli",
        *args,
        env={**env, **settings.to_env()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    said, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, said.decode()


async def goal_events(nc: NatsClient, goal_id: str) -> list[Event]:
    return await all_events(nc, f"agora.events.{goal_id}.>")


async def requested(nc: NatsClient, goal_id: str, count: int) -> ApprovalRequested:
    """The goal's ``count``-th approval request, once it is in the log and in the views."""
    found: list[ApprovalRequested] = []

    async def asked() -> bool:
        found[:] = [e for e in await goal_events(nc, goal_id) if isinstance(e, ApprovalRequested)]
        if len(found) < count:
            return False
        listed = await ask(
            nc,
            "SELECT count(*) FROM approvals WHERE approval_id = ? AND status = 'waiting'",
            params=(found[count - 1].approval_id,),
        )
        return listed.rows == [[1]]

    await wait_until(asked, timeout_s=30, what=f"{goal_id}'s approval request {count}")
    return found[count - 1]


async def test_react_calls_wait_for_approval_through_a_restart_edit_deny_and_deadline(
    nc: NatsClient, settings: Settings, client: AgoraClient
) -> None:
    with ScriptedLlmServer("openai", provider) as server:
        platform = InProcessPlatform(llm_settings(settings, server))
        platform.start()
        try:
            await client.submit(react_goal(ANSWERED, deadline_s=3600))
            await client.submit(react_goal(TIMED_OUT, deadline_s=1))
            first = await requested(nc, ANSWERED, 1)
            status = await ask(nc, "SELECT status FROM goals WHERE goal_id = ?", params=(ANSWERED,))
            assert status.rows == [["waiting_approval"]]

            # Every service stops and starts again while the call waits.
            await platform.stop()
            platform.start()

            edit = {"path": f"{ANSWERED}/edited.txt", "content": "draft"}
            sent = await client.answer_approval(
                first.approval_id, "approve", args=edit, by="ada", command_id="c-edit"
            )
            granted = await client.answer(sent)
            assert isinstance(granted, ApprovalGranted), granted
            again = await client.answer_approval(first.approval_id, "deny", reason="late")
            late = await client.answer(again)
            assert isinstance(late, ApprovalRejected)
            assert "already granted" in late.reason

            # What `agora approvals` lists: the model's next call, and no longer the first.
            second = await requested(nc, ANSWERED, 2)
            waiting = waiting_approvals_statement()
            listed = await ask(nc, waiting.sql, params=waiting.params)
            rows = {
                row["approval_id"]: row
                for row in (
                    dict(zip(listed.columns, values, strict=True)) for values in listed.rows
                )
            }
            assert json.loads(rows[second.approval_id]["args"]) == {
                "path": f"{ANSWERED}/b.txt",
                "content": "b",
            }
            assert first.approval_id not in rows
            # `agora deny` answers it.
            code, said = await agora(settings, "deny", second.approval_id, "--reason", "not b")
            assert (code, "denied: not b" in said) == (0, True), said
            # The same answer sent again (its command id) is acted on once.
            await client.answer_approval(
                first.approval_id, "approve", args=edit, command_id="c-edit"
            )

            async def both_completed() -> bool:
                ended = [
                    e.goal_id
                    for goal_id in (ANSWERED, TIMED_OUT)
                    for e in await goal_events(nc, goal_id)
                    if isinstance(e, GoalCompleted)
                ]
                return sorted(ended) == sorted((ANSWERED, TIMED_OUT))

            await wait_until(both_completed, timeout_s=30, what="both goals to complete")
            trajectory = await ask(
                nc,
                "SELECT summary FROM trajectory WHERE goal_id = ? AND type = 'approval_granted'",
                params=(ANSWERED,),
            )
        finally:
            await platform.stop()

    answered, timed_out = await goal_events(nc, ANSWERED), await goal_events(nc, TIMED_OUT)
    # What ran: the echo, and the edited write, once; never a write that was not approved.
    writes = [e.args for e in answered if isinstance(e, ToolCalled) and e.tool == "write_file"]
    assert writes == [edit]
    workspace = settings.workspace
    assert (workspace / ANSWERED / "edited.txt").read_text() == "draft"
    assert sorted(p.name for p in workspace.rglob("*.txt")) == ["edited.txt"]
    assert not any(isinstance(e, ToolCalled) and e.tool == "write_file" for e in timed_out)
    assert sum(isinstance(e, ApprovalGranted) for e in answered) == 1

    # Each think was asked of the provider once, across the restart and every resumption.
    thinks: dict[str, list[dict[str, Any]]] = {ANSWERED: [], TIMED_OUT: []}
    for body in server.bodies():
        if asks_for(body) is None:
            thinks[goal_of(body)].append(body)
    assert [len(observations(b)) for b in thinks[ANSWERED]] == [0, 2, 3]
    assert [len(observations(b)) for b in thinks[TIMED_OUT]] == [0, 2]
    assert observations(thinks[ANSWERED][1])[-1]["approved_args"] == edit
    assert observations(thinks[ANSWERED][-1])[-1] == {
        "tool": "write_file",
        "status": "denied",
        "error": "approval denied: not b",
    }
    (deadline,) = [e for e in timed_out if isinstance(e, ApprovalDenied)]
    assert deadline.by == "_deadline"
    told = observations(thinks[TIMED_OUT][-1])[-1]
    assert (told["status"], "no answer by the deadline" in told["error"]) == ("denied", True)

    # The trajectory shows the edit beside what was asked.
    ((summary,),) = trajectory.rows
    assert "approved with edited args" in summary
    assert "edited.txt" in summary
    assert "a.txt" in summary

    # The timeline draws each wait inside the running task, asked by the executor.
    timeline = build_timeline(ANSWERED, answered)
    assert timeline is not None
    (task_bar,) = [bar for bar in timeline.bars if bar.kind == "task"]
    waits = [bar for bar in task_bar.children if bar.kind == "approval"]
    assert [(bar.actor, bar.status) for bar in waits] == [
        ("executor", "granted"),
        ("executor", "denied"),
    ]

    # Re-run over the record, the current executor code asks the same, is answered by the
    # recorded answers, and decides the same, with no model asked.
    await assert_reruns_identically(server, answered, timed_out)


async def assert_reruns_identically(server: ScriptedLlmServer, *histories: list[Event]) -> None:
    """Each goal's ``history`` re-run through the current executor code decides what was
    recorded, answered from the record alone: the model ``server`` is not asked."""
    options = RerunOptions(
        planning=None,
        producer=producer_name("executor"),
        react_prompt=load_prompt("executor", "react", 1),
    )
    asked_before = len(server.requests)
    for history in histories:
        report = await rerun_executor(history, options, datetime.now(UTC))
        assert report.identical, report.differences
    assert len(server.requests) == asked_before
