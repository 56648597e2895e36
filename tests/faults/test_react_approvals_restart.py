"""ReAct tasks whose model's call waits for approval, while every agora process and nats-server
are SIGKILLed and restarted; then answered from the command line. Each approved call runs
exactly once, the model is not asked again for the think it answered before the kill (the
resumed task reads its recorded answer), each goal completes once, and a goal cancelled while
its call waited ends with its task cancelled and nothing of it run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient

from events.catalog import (
    ApprovalDenied,
    GoalCancelled,
    GoalCompleted,
    GoalFailed,
    TaskCancelled,
    ToolCalled,
)
from events.errors import AgoraError
from events.subjects import EVENTS_STREAM
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.clients.query import ask
from infra.dashboard.queries import waiting_approvals_statement
from infra.platform.embedded import EmbeddedNats
from infra.platform.runner import SERVICES
from tests.faults.conftest import report
from tests.faults.harness import (
    CALLS_DIR,
    ServiceProcesses,
    fault_settings,
    kill_everything_and_restart,
    submit_all,
)
from tests.integration.test_react_approvals import agora, asks_for, observations
from tests.llm_servers import ReceivedRequest, Scripted, ScriptedLlmServer, llm_settings
from tests.llm_servers import openai_reply as reply
from tests.support import all_events, wait_until

GOALS = [f"rk-{n}" for n in range(4)]


def react_goal(goal_id: str) -> dict[str, Any]:
    """A goal the model plans as one ReAct task, whose call needs approval."""
    return {
        "command_id": f"cmd-{goal_id}",
        "goal_id": goal_id,
        "text": f"note it for {goal_id}",
        "approval": {"require": ["append_line"]},
    }


def react_plan(goal_id: str) -> dict[str, Any]:
    task = {
        "id": "s1",
        "description": "append a line",
        "tool": "react",
        "args": {"instruction": f"append a line for {goal_id}"},
        "depends_on": [],
        "allowed_tools": ["append_line"],
    }
    return {"tasks": [task]}


def goal_of(body: dict[str, Any]) -> str:
    said = json.dumps(body["messages"])
    (goal_id,) = [g for g in GOALS if f"for {g}" in said]
    return goal_id


def provider(request: ReceivedRequest) -> Scripted:
    """A plan of one ReAct task; the judge accepts; the agent appends to its goal's file,
    then answers with the result."""
    body = request.body
    if asks_for(body) == "plan":
        return reply(json.dumps(react_plan(goal_of(body))))
    if asks_for(body) == "judgement":
        verdict = {"score": 0.9, "verdict": "accept", "feedback": "fine", "criteria": []}
        return reply(json.dumps(verdict))
    seen = observations(body)
    if not seen:
        line = {"path": f"{CALLS_DIR}/{goal_of(body)}.txt", "line": "ran"}
        return reply(None, tool_calls=[("append_line", line)])
    return reply(f"noted: {seen[-1]['status']}")


def thinks_by_goal(server: ScriptedLlmServer) -> dict[str, int]:
    asked = dict.fromkeys(GOALS, 0)
    for body in server.bodies():
        if asks_for(body) is None:
            asked[goal_of(body)] += 1
    return asked


async def _subjects(nc: NatsClient, subjects: str) -> int:
    info = await nc.jetstream().stream_info(EVENTS_STREAM, subjects_filter=subjects)
    return len(info.state.subjects or {})


async def _waiting(nc: NatsClient) -> set[str]:
    """The approval ids ``agora approvals`` lists (its statement, asked over the bus)."""
    statement = waiting_approvals_statement()
    try:
        listed = await ask(nc, statement.sql, params=statement.params, timeout_s=2)
    except (AgoraError, nats.errors.Error):
        return set()  # the server or the projector is not back yet
    return {str(row[0]) for row in listed.rows}


async def test_react_calls_waiting_for_approval_survive_a_full_kill_then_run_once(
    tmp_path: Path,
) -> None:
    server = EmbeddedNats(tmp_path / "nats", durability="os").start()
    with ScriptedLlmServer("openai", provider) as llm:
        settings = llm_settings(fault_settings(tmp_path, server.url), llm)
        nc = await connect(settings, "react-approvals-test")
        services = ServiceProcesses(settings, log_dir=tmp_path / "logs")
        *approved, cancelled = GOALS
        waits = {g: f"{g}/1/s1/1/1" for g in GOALS}
        try:
            await provision(nc.jetstream(), settings)
            for name in SERVICES:
                services.start(name)
            await submit_all(AgoraClient(nc), [react_goal(g) for g in GOALS])

            async def all_listed() -> bool:
                return set(waits.values()) <= await _waiting(nc)

            await wait_until(all_listed, timeout_s=60, what="agora approvals to list every call")
            assert thinks_by_goal(llm) == dict.fromkeys(GOALS, 1)

            kill_everything_and_restart(services, server)
            await wait_until(all_listed, timeout_s=60, what="the waits listed after the restart")
            code, said = await agora(settings, "approvals", "--format", "json")
            assert code == 0, said
            assert {row["approval_id"] for row in json.loads(said)} == set(waits.values())
            assert not (settings.workspace / CALLS_DIR).exists()  # nothing ran while they waited

            code, said = await agora(settings, "cancel", cancelled, "--reason", "not needed")
            assert code == 0, said
            code, said = await agora(settings, "approve", *(waits[g] for g in approved))
            assert code == 0, said

            async def all_ended() -> bool:
                ended = 0
                for kind in ("goal_completed", "goal_failed", "goal_cancelled"):
                    ended += await _subjects(nc, f"agora.events.*.{kind}")
                stopped = await _subjects(nc, f"agora.events.{cancelled}.task_cancelled")
                return ended == len(GOALS) and stopped == 1

            await wait_until(all_ended, timeout_s=60, what="every goal to end")
            log = await all_events(nc)

            async def cancelled_in_the_views() -> bool:
                # The cancelled goal's ReAct task and its call, as the views show them.
                rows = await ask(
                    nc,
                    "SELECT t.status, a.status, a.answered_by FROM tasks AS t JOIN approvals "
                    "AS a USING (goal_id) WHERE goal_id = ?",
                    params=(cancelled,),
                    timeout_s=2,
                )
                return rows.rows == [["cancelled", "denied", "_cancel"]]

            await wait_until(cancelled_in_the_views, timeout_s=30, what="the views of the cancel")
            assert waits[cancelled] not in await _waiting(nc)
        finally:
            services.stop_all()
            await nc.close()
            server.stop()

    def of(goal_id: str, kind: type) -> list[Any]:
        return [e for e in log if e.goal_id == goal_id and isinstance(e, kind)]

    calls = settings.workspace / CALLS_DIR
    for goal_id in approved:
        assert [
            type(e)
            for e in log
            if isinstance(e, GoalCompleted | GoalFailed | GoalCancelled) and e.goal_id == goal_id
        ] == [GoalCompleted], goal_id
        assert len(of(goal_id, ToolCalled)) == 1, goal_id  # announced once: it ran once
        assert (calls / f"{goal_id}.txt").read_text() == "ran\n", goal_id
        assert of(goal_id, GoalCompleted)[0].result == "noted: returned"
    # The cancelled goal's wait was closed: denied, its task cancelled, nothing of it ran.
    assert len(of(cancelled, GoalCancelled)) == 1
    (denied,) = of(cancelled, ApprovalDenied)
    assert (denied.approval_id, denied.by) == (waits[cancelled], "_cancel")
    assert len(of(cancelled, TaskCancelled)) == 1
    assert of(cancelled, ToolCalled) == []
    assert not (calls / f"{cancelled}.txt").exists()
    # Each think was asked once: the first before the kill, never again after it; the approved
    # goals' second think saw their call's result.
    assert thinks_by_goal(llm) == {**dict.fromkeys(approved, 2), cancelled: 1}
    report(
        f"react approvals: {len(GOALS)} waiting ReAct calls through a full kill; "
        "each approved call ran once, no think asked twice"
    )
