"""Durable waits inside ReAct tasks, on the real platform and a real nats-server, over real HTTP
to a scripted OpenAI-compatible provider: a long ``sleep`` the model asks for holds no process
and no delivery, survives a restart of every service and of nats-server, and resumes the task
on its wake-up with each think asked once; a cancel during the wait ends the task and asks the
model nothing more."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

from nats.aio.client import Client as NatsClient

from events.catalog import (
    GoalCancelled,
    GoalCompleted,
    TaskCancelled,
    TaskCompleted,
    TimerFired,
    TimerStarted,
    ToolReturned,
)
from events.model import Event
from events.subjects import EVENTS_STREAM, INTAKE_STREAM
from infra.clients.goals import AgoraClient
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings
from projections.timeline import build_timeline
from tests.conftest import InProcessPlatform
from tests.integration.test_durable_timers import counted, restart_everything
from tests.integration.test_react_approvals import (
    asks_for,
    assert_reruns_identically,
    observations,
)
from tests.llm_servers import ReceivedRequest, Scripted, ScriptedLlmServer, llm_settings
from tests.llm_servers import openai_reply as reply
from tests.support import all_events, duplicates, wait_until

NAP = "g-react-nap"
CANCELLED = "g-react-nap-cancelled"
SLEEP_S = {NAP: 4, CANCELLED: 3000}


def goal_of(body: dict[str, Any]) -> str:
    return CANCELLED if CANCELLED in json.dumps(body["messages"]) else NAP


def provider(request: ReceivedRequest) -> Scripted:
    """A plan of one ReAct task that may sleep; the judge accepts; the agent sleeps its goal's
    time, then answers with what the sleep returned."""
    body = request.body
    goal = goal_of(body)
    if asks_for(body) == "plan":
        task = {
            "id": "r1",
            "description": "rest, then report",
            "tool": "react",
            "args": {"instruction": f"rest, then report ({goal})"},
            "depends_on": [],
            "allowed_tools": ["sleep"],
        }
        return reply(json.dumps({"tasks": [task]}))
    if asks_for(body) == "judgement":
        verdict = {"score": 0.9, "verdict": "accept", "feedback": "fine", "criteria": []}
        return reply(json.dumps(verdict))
    seen = observations(body)
    if not seen:
        return reply(None, tool_calls=[("sleep", {"seconds": SLEEP_S[goal]})])
    return reply(f"rested: {seen[-1].get('output', seen[-1].get('error'))}")


def thinks(server: ScriptedLlmServer, goal_id: str) -> list[dict[str, Any]]:
    return [b for b in server.bodies() if asks_for(b) is None and goal_of(b) == goal_id]


async def goal_events(nc: NatsClient, goal_id: str) -> list[Event]:
    return await all_events(nc, f"agora.events.{goal_id}.>")


async def test_a_react_tasks_long_sleep_holds_nothing_survives_a_restart_and_a_cancel(
    nats_server: EmbeddedNats, nc: NatsClient, client: AgoraClient, settings: Settings
) -> None:
    with ScriptedLlmServer("openai", provider) as server:
        platform = InProcessPlatform(llm_settings(replace(settings, timer_threshold_s=1.0), server))
        platform.start()
        try:
            for goal_id in (NAP, CANCELLED):
                await client.submit({"goal_id": goal_id, "text": f"rest, then report {goal_id}"})

            async def both_waiting() -> bool:
                for goal_id in (NAP, CANCELLED):
                    if not await counted(nc, f"agora.events.{goal_id}.timer_started", 1):
                        return False
                # The nap may be over already on a slow machine; the other sleeps on.
                waiting = await client.query(
                    "SELECT status FROM tasks WHERE goal_id = ?", params=(CANCELLED,)
                )
                return waiting.rows == [["waiting"]]

            await wait_until(both_waiting, timeout_s=20, what="both ReAct tasks on their timers")

            async def nothing_held() -> bool:
                tasks = await nc.jetstream().consumer_info(EVENTS_STREAM, "executor")
                wakeups = await nc.jetstream().consumer_info(INTAKE_STREAM, "executor")
                return tasks.num_ack_pending == wakeups.num_ack_pending == 0

            # No process holds a delivery while a call sleeps.
            await wait_until(nothing_held, timeout_s=5, what="every delivery acked in the wait")
            assert len(thinks(server, CANCELLED)) == 1

            await restart_everything(platform, nats_server)

            sent = await client.cancel(CANCELLED, reason="not needed")
            assert isinstance(await client.answer(sent, timeout_s=10), GoalCancelled)

            async def both_ended() -> bool:
                return await counted(nc, f"agora.events.{NAP}.goal_completed", 1) and await counted(
                    nc, f"agora.events.{CANCELLED}.task_cancelled", 1
                )

            await wait_until(both_ended, timeout_s=30, what="the nap done, the other cancelled")
        finally:
            await platform.stop()

    nap, cancelled = await goal_events(nc, NAP), await goal_events(nc, CANCELLED)
    assert duplicates([*nap, *cancelled]) == {}
    kinds = Counter(type(e) for e in nap)
    assert [kinds[k] for k in (TimerStarted, TimerFired, TaskCompleted, GoalCompleted)] == [
        1,
        1,
        1,
        1,
    ]
    (timer,) = [e for e in nap if isinstance(e, TimerStarted)]
    (fired,) = [e for e in nap if isinstance(e, TimerFired)]
    assert (timer.step, timer.call, timer.tool) == (1, 1, "sleep")
    assert (fired.step, fired.call, fired.timer_id) == (1, 1, timer.timer_id)
    (slept,) = [e for e in nap if isinstance(e, ToolReturned)]
    assert (slept.step, slept.output) == (1, "slept 4s")
    assert slept.occurred_at >= timer.due_at  # never woken early
    (done,) = [e for e in nap if isinstance(e, TaskCompleted)]
    assert done.output == "rested: slept 4s"

    # Each think was asked of the model once, across the restart and the resumption; the
    # second saw the sleep's result.
    asked = thinks(server, NAP)
    assert [len(observations(b)) for b in asked] == [0, 1]
    assert observations(asked[1]) == [{"tool": "sleep", "status": "returned", "output": "slept 4s"}]

    # The cancelled goal's sleeping call ended with its task: nothing woke it, nothing more
    # was asked.
    (ended,) = [e for e in cancelled if isinstance(e, TaskCancelled)]
    assert ended.task_id == "r1"
    assert not any(isinstance(e, TimerFired | ToolReturned | TaskCompleted) for e in cancelled)
    assert len(thinks(server, CANCELLED)) == 1

    # Re-run over the record, the current executor code decides the same (the wait on a
    # timer, its wake-up, the resumed think), with no model asked.
    await assert_reruns_identically(server, nap, cancelled)

    # The timeline draws the sleep as the task's call, from its call to its result.
    timeline = build_timeline(NAP, nap)
    assert timeline is not None
    (task_bar,) = [bar for bar in timeline.bars if bar.kind == "task"]
    (call,) = [bar for bar in task_bar.children if bar.kind == "tool"]
    assert (call.label, call.status, call.end) == ("sleep (step 1)", "completed", slept.occurred_at)
