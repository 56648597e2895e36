"""The LLM planner and ReAct tasks with MCP tools (``mcp-server-time`` over stdio), a scripted
model over real HTTP: the model sees a granted MCP tool with its schema and plans with it; an
ungranted one it never sees, and cannot plan with; a ReAct task calls a granted one under a
name providers accept; and a re-run of each goal asks no model and calls no server.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from events.catalog import GoalCompleted, GoalFailed, PlanCreated, TaskCompleted, ToolCalled
from infra.bus.connection import connect
from infra.cli.rerun import rerun_goal
from infra.clients.goals import AgoraClient
from infra.mcp.catalogue import read_listings
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.integration.test_llm_goal import ACCEPT, observations, schema_name
from tests.llm_servers import (
    ReceivedRequest,
    Scripted,
    ScriptedLlmServer,
    llm_settings,
    openai_reply,
)
from tests.support import wait_until

TIME = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}
NOW = "time.get_current_time"

TIME_PLAN = {
    "tasks": [
        {
            "id": "now",
            "description": "the time in Tokyo",
            "tool": NOW,
            "args": {"timezone": "Asia/Tokyo"},
            "depends_on": [],
        },
        {
            "id": "say",
            "description": "say it",
            "tool": "echo",
            "args": {"text": "Tokyo: {{steps.now.output}}"},
            "depends_on": ["now"],
        },
    ]
}
REACT_PLAN = {
    "tasks": [
        {
            "id": "r1",
            "description": "find the time in Tokyo",
            "tool": "react",
            "args": {"instruction": "find the current time in Tokyo and say it"},
            "depends_on": [],
            "allowed_tools": [NOW],
        }
    ]
}


def system_prompt(request: ReceivedRequest) -> str:
    return "\n".join(m["content"] for m in request.body["messages"] if m["role"] == "system")


def model(plan: dict[str, Any]) -> Any:
    """Plans ``plan`` whatever it is shown; judges accept; a ReAct turn asks for the time."""

    def script(request: ReceivedRequest) -> Scripted:
        name = schema_name(request)
        if name == "plan":
            return openai_reply(json.dumps(plan))
        if name == "judgement":
            return openai_reply(json.dumps(ACCEPT))
        seen = observations(request.body)
        if not seen:
            # The wire name of the offered tool: providers accept no dots.
            [offered] = request.body["tools"]
            tool = offered["function"]["name"]
            return openai_reply(None, tool_calls=[(tool, {"timezone": "Asia/Tokyo"})])
        return openai_reply(f"In Tokyo it is {json.loads(seen[-1]['output'])['datetime']}")

    return script


@pytest.fixture
async def platform_with_time(
    settings: Settings, openai_server: ScriptedLlmServer
) -> AsyncIterator[Settings]:
    live = llm_settings(
        replace(settings, mcp_servers=json.dumps({"mcpServers": {"time": TIME}})), openai_server
    )
    platform = InProcessPlatform(live)
    platform.start("planner", "executor", "memory", "evaluator")
    nc = await connect(settings, "agora-test-listings")
    try:

        async def listed() -> bool:
            return any(e.tools for e in await read_listings(nc))

        await wait_until(listed, what="the time server's listing")
    finally:
        await nc.close()
    yield live
    await platform.stop()


async def test_the_llm_planner_plans_with_a_granted_mcp_tool_and_its_schema(
    settings: Settings,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    platform_with_time: Settings,
) -> None:
    openai_server.set_script(model(TIME_PLAN))
    submitted = await client.submit(
        {"text": "what time is it in Tokyo? say it", "allowed_tools": [NOW]}
    )
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=60)
    assert isinstance(events[-1], GoalCompleted), events[-1]

    plan_request = next(r for r in openai_server.requests if schema_name(r) == "plan")
    # The model saw the tool and its arguments' JSON Schema, in the prompt and the schema.
    assert NOW in system_prompt(plan_request)
    assert "IANA timezone name" in system_prompt(plan_request)
    branches = plan_request.body["response_format"]["json_schema"]["schema"]["properties"]
    [branch] = [
        b for b in branches["tasks"]["items"]["anyOf"] if b["properties"]["tool"] == {"const": NOW}
    ]
    assert branch["properties"]["args"]["required"] == ["timezone"]

    [created] = [e for e in events if isinstance(e, PlanCreated)]
    assert [(t.tool, t.allowed_tools) for t in created.tasks] == [(NOW, (NOW,)), ("echo", ())]
    now = next(e for e in events if isinstance(e, TaskCompleted) and e.task_id == "now")
    assert now.structured is not None
    assert now.structured["timezone"] == "Asia/Tokyo"
    assert events[-1].result.startswith("Tokyo: ")

    # Re-run: the planner's and executor's decisions from the record; no model asked.
    asked = len(openai_server.requests)
    for service in ("planner", "executor"):
        report = await rerun_goal(platform_with_time, submitted.goal_id, service=service)
        assert report.identical, report.differences
        assert report.llm_calls == 0
    assert len(openai_server.requests) == asked


async def test_an_ungranted_mcp_tool_is_never_shown_to_the_model_nor_planned(
    client: AgoraClient, openai_server: ScriptedLlmServer, platform_with_time: Settings
) -> None:
    # The model plans the MCP tool anyway (as an injected instruction might make it).
    openai_server.set_script(model(TIME_PLAN))
    submitted = await client.submit({"text": "what time is it in Tokyo? say it"})
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=60)

    failed = events[-1]
    assert isinstance(failed, GoalFailed), failed
    assert f"unknown tool {NOW!r}" in failed.reason
    plan_requests = [r for r in openai_server.requests if schema_name(r) == "plan"]
    assert plan_requests
    assert all(NOW not in json.dumps(r.body) for r in plan_requests[:1])
    assert not [e for e in events if isinstance(e, ToolCalled)]


async def test_a_react_task_calls_a_granted_mcp_tool_under_a_wire_safe_name(
    client: AgoraClient, openai_server: ScriptedLlmServer, platform_with_time: Settings
) -> None:
    openai_server.set_script(model(REACT_PLAN))
    submitted = await client.submit(
        {"text": "what time is it in Tokyo? find out", "allowed_tools": [NOW]}
    )
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=60)
    assert isinstance(events[-1], GoalCompleted), events[-1]

    react_turns = [r for r in openai_server.requests if "tools" in r.body]
    assert [t["function"]["name"] for t in react_turns[0].body["tools"]] == [
        "time_get_current_time"
    ]
    # The call came back under agora's name, and its output reached the model quoted.
    [called] = [e for e in events if isinstance(e, ToolCalled)]
    assert (called.tool, called.args) == (NOW, {"timezone": "Asia/Tokyo"})
    assert observations(react_turns[1].body)[0]["tool"] == NOW
    assert react_turns[1].body["messages"][-2]["tool_calls"][0]["function"]["name"] == (
        "time_get_current_time"
    )
    assert events[-1].result.startswith("In Tokyo it is ")

    asked = len(openai_server.requests)
    report = await rerun_goal(platform_with_time, submitted.goal_id, service="executor")
    assert report.identical, report.differences
    assert len(openai_server.requests) == asked
