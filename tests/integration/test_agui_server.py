"""agora's AG-UI endpoint over real HTTP (uvicorn on a loopback socket) on a real nats-server
and real services: a model-planned goal (streamed model answers, a ReAct task, a judge) runs
from a RunAgentInput, and every streamed event validates by the ``ag-ui-protocol`` models in a
run of the right shape; bad input is refused with 422 (or 413, 401) and submits nothing; a
goal the planner rejects ends its run with RUN_ERROR."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from nats.aio.client import Client as NatsClient

from events.subjects import EVENTS_STREAM
from infra.agui_server.http import AGUI_PATH, MAX_BODY_BYTES, build_app
from infra.bus.reader import stream_last_seq
from infra.clients.goals import AgoraClient
from infra.platform.sockets import base_url, listening_socket
from infra.settings import Settings
from tests.agui_support import check_run
from tests.conftest import InProcessPlatform
from tests.integration.test_llm_goal import ACCEPT, REACT_PLAN, plans
from tests.llm_servers import ScriptedLlmServer, llm_settings

TOKEN = "agui-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def agui_url(client: AgoraClient) -> AsyncIterator[str]:
    sock = listening_socket("127.0.0.1", 0)
    config = uvicorn.Config(build_app(client, token=TOKEN), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    yield base_url(sock) + AGUI_PATH
    server.should_exit = True
    await asyncio.wait_for(serving, 10)


def _input(run_id: str, text: str, **fields: Any) -> dict[str, Any]:
    return {
        "threadId": "thread-1",
        "runId": run_id,
        "messages": [{"id": "m1", "role": "user", "content": text}],
        **fields,
    }


async def _stream(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event of the run, parsed from the SSE stream as it arrives."""
    events: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http,
        http.stream("POST", url, json=body, headers=AUTH) as answer,
    ):
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        async for line in answer.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    return events


@pytest.fixture
async def model_platform(
    settings: Settings, nc: NatsClient, openai_server: ScriptedLlmServer
) -> AsyncIterator[None]:
    openai_server.set_script(plans(REACT_PLAN, verdicts=(ACCEPT,)))
    platform = InProcessPlatform(llm_settings(settings, openai_server, llm_stream=True))
    platform.start("planner", "executor", "memory", "evaluator")
    yield
    await platform.stop()


@pytest.mark.slow
async def test_a_run_streams_a_model_planned_goal_as_valid_ag_ui_events(
    agui_url: str, model_platform: None, nc: NatsClient
) -> None:
    wire = await _stream(agui_url, _input("run-llm", "what is 17*23? say the answer"))
    state = check_run(wire)
    types = [e["type"] for e in wire]
    assert wire[-1]["type"] == "RUN_FINISHED", wire[-1]
    assert wire[-1]["outcome"] == {"type": "success"}
    assert (wire[0]["threadId"], wire[0]["runId"]) == ("thread-1", "run-llm")
    assert state["status"] == "completed"
    assert {"STATE_SNAPSHOT", "STATE_DELTA", "STEP_STARTED", "TOOL_CALL_RESULT"} <= set(types)
    calls = [e["toolCallName"] for e in wire if e["type"] == "TOOL_CALL_START"]
    assert calls == ["calculator", "echo"]  # the ReAct task's two calls
    results = [e["content"] for e in wire if e["type"] == "TOOL_CALL_RESULT"]
    assert "391" in results
    # The model's answers arrived token by token (agora.live), as text messages of their own,
    # before the goal's result, which is one message more.
    texts: dict[str, str] = {}
    for event in wire:
        if event["type"] == "TEXT_MESSAGE_CONTENT":
            texts[event["messageId"]] = texts.get(event["messageId"], "") + event["delta"]
    live = [text for message_id, text in texts.items() if "-live-" in message_id]
    assert len(live) >= 3  # the plan, the ReAct turns, the judgement
    assert any('"tasks"' in text for text in live)  # the plan, streamed
    assert list(texts.values())[-1] == wire[-1]["result"]
    usage = wire[-1]["usage"]
    assert sum(u["inputTokens"] for u in usage) > 0

    # The same run sent again is the same goal: nothing new runs, the run streams again.
    before = await stream_last_seq(nc, EVENTS_STREAM)
    again = await _stream(agui_url, _input("run-llm", "what is 17*23? say the answer"))
    assert [e["type"] for e in again if not e["type"].startswith("TEXT_MESSAGE")] == [
        t
        for t, e in zip(types, wire, strict=True)
        if "-live-" not in e.get("messageId", "") and not t.startswith("TEXT_MESSAGE")
    ]
    assert await stream_last_seq(nc, EVENTS_STREAM) == before


async def test_bad_run_input_is_refused_with_what_is_wrong_and_submits_nothing(
    agui_url: str, nc: NatsClient, platform: InProcessPlatform
) -> None:
    before = await stream_last_seq(nc, EVENTS_STREAM)
    deep = "[" * 5000 + '"x"' + "]" * 5000  # deeper than any parser should follow
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as http:
        cases = {
            "not json": b"{not json",
            "no messages": json.dumps({"threadId": "t", "runId": "r"}).encode(),
            "no user text": json.dumps(
                {**_input("r", "x"), "messages": [{"id": "a", "role": "assistant", "content": "x"}]}
            ).encode(),
            "deep": json.dumps(_input("r", "x", forwardedProps="DEEP"))
            .replace('"DEEP"', deep)
            .encode(),
            "ids chosen": json.dumps(
                _input("r", "x", forwardedProps={"agora": {"goal_id": "mine"}})
            ).encode(),
        }
        answers = {
            name: await http.post(
                agui_url, content=body, headers={"content-type": "application/json"}
            )
            for name, body in cases.items()
        }
        huge = await http.post(agui_url, content=b"[" * (MAX_BODY_BYTES + 1))
        refused = await http.post(
            agui_url, json=_input("r", "x"), headers={"Authorization": "Bearer no"}
        )
        ok = await http.post(agui_url, json=_input("r", "x"), headers={"Authorization": ""})
    for name, answer in answers.items():
        assert answer.status_code == 422, (name, answer.text)
        assert answer.json()["error"], name
    assert "messages" in json.dumps(answers["no messages"].json()["errors"])
    assert "no user message" in answers["no user text"].json()["error"]
    assert "names goal_id" in answers["ids chosen"].json()["error"]
    assert len(answers["deep"].text) < 10_000  # the input is not echoed back
    assert huge.status_code == 413
    assert refused.status_code == 401
    assert ok.status_code == 401
    assert await stream_last_seq(nc, EVENTS_STREAM) == before

    # A command the planner rejects (an unknown tool) is a run that ends with RUN_ERROR.
    steps = [{"tool": "no_such_tool", "args": {}}]
    wire = await _stream(agui_url, _input("r-bad", "x", forwardedProps={"agora": {"steps": steps}}))
    check_run(wire)
    assert [e["type"] for e in wire] == ["RUN_STARTED", "RUN_ERROR"]
    assert wire[-1]["code"] == "goal_rejected"
    assert "no_such_tool" in wire[-1]["message"]
