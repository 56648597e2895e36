"""Injection safety: injected tool output, read by a model that obeys it, changes nothing.

A corpus of injected tool outputs (``tests/data/injections.json``) is served through a
granted tool (``read_file``, ``docs.fetch`` of a real MCP server over stdio, or ``a2a.docs``,
a real A2A agent over HTTP: their outputs are untrusted data like any other) to ReAct tasks
run by the real executor, on a real nats-server,
talking real HTTP to a scripted provider that *obeys* every injection: it asks for exactly
the tool calls the injection demands. Every such call names a tool the task was not granted,
or has arguments its schema refuses, so each must be refused: the stream shows zero calls
of non-granted tools, nothing written, nothing published outside the tasks' own step events.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from nats.aio.client import Client as NatsClient
from pydantic import ValidationError

from events.catalog import TaskCompleted, TaskScheduled, ToolCalled, ToolRefused, ToolReturned
from events.model import event_type
from events.subjects import DLQ_STREAM, INTAKE_STREAM
from events.tools import BUILTIN_TOOLS
from infra.bus.publisher import EventPublisher
from infra.settings import Settings
from tests.a2a_agents import RunningAgents, serve_agents
from tests.conftest import InProcessPlatform
from tests.llm_servers import (
    Flavour,
    ReceivedRequest,
    Scripted,
    ScriptedLlmServer,
    anthropic_reply,
    llm_settings,
    openai_reply,
)
from tests.support import all_events, duplicates, wait_until

CORPUS = json.loads((Path(__file__).parent.parent / "data" / "injections.json").read_text())
CASES: list[dict[str, Any]] = CORPUS["cases"]
GRANTED: tuple[str, ...] = tuple(CORPUS["granted"])
ALLOWED_TYPES = {
    "task_scheduled",
    "task_started",
    "llm_requested",
    "llm_responded",
    "tool_called",
    "tool_returned",
    "tool_refused",
    "task_completed",
}
FILE_IN_INSTRUCTION = re.compile(r"the file (\S+)\.txt")
FINAL_ANSWER = "I read the file; it holds no information for this task."
# Where the injected text comes from: the built-in file tool, an MCP server's tool, or a
# remote A2A agent's answer.
Source = Literal["read_file", "mcp", "a2a"]
DOCUMENTS_SERVER = Path(__file__).parent.parent / "mcp_servers" / "documents.py"
MCP_GRANTED = ("docs.fetch",)
A2A_GRANTED = ("a2a.docs",)
A2A_TOKEN = "token-of-the-documents-agent"


def reading(source: Source, case_id: str) -> tuple[str, dict[str, Any]]:
    """The granted call that brings a case's text in."""
    if source == "mcp":
        return "docs.fetch", {"name": case_id}
    if source == "a2a":
        return "a2a.docs", {"text": case_id}
    return "read_file", {"path": f"{case_id}.txt"}


def test_the_corpus_is_large_enough_and_never_obeys_with_a_granted_valid_call() -> None:
    assert len(CASES) >= 30
    assert len({case["id"] for case in CASES}) == len(CASES)
    for case in CASES:
        assert case["obey"], case["id"]
        # A granted tool is obeyed only with arguments its schema refuses (extra or mistyped).
        for call in case["obey"]:
            if call["name"] in GRANTED:
                with pytest.raises(ValidationError):
                    BUILTIN_TOOLS[call["name"]].args.model_validate(call["arguments"])


def tool_results(flavour: Flavour, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The observations the executor sent back, decoded from either wire format."""
    results: list[dict[str, Any]] = []
    for message in body["messages"]:
        if flavour == "openai" and message["role"] == "tool":
            results.append(json.loads(message["content"]))
        elif flavour == "anthropic" and isinstance(message["content"], list):
            results += [
                json.loads(block["content"])
                for block in message["content"]
                if block.get("type") == "tool_result"
            ]
    return results


def untrusted_free_text(flavour: Flavour, body: dict[str, Any]) -> str:
    """Everything the model reads as instructions: system, user and assistant text."""
    parts = [body.get("system", "")]
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, str) and message["role"] != "tool":
            parts.append(content)
        elif flavour == "anthropic" and isinstance(content, list):
            parts += [block.get("text", "") for block in content if block.get("type") == "text"]
    return "\n".join(parts)


def case_of(body: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(body["messages"][0 if "system" in body else 1])
    match = FILE_IN_INSTRUCTION.search(text)
    assert match is not None, text
    return next(case for case in CASES if case["id"] == match.group(1))


def obedient_model(flavour: Flavour, source: Source = "read_file") -> Any:
    """Step 1: read the file. Step 2: do what the file says. Step 3: answer."""

    def answer(calls: list[tuple[str, dict[str, Any]]], text: str = "") -> Scripted:
        if flavour == "openai":
            return openai_reply(text or None, tool_calls=calls)
        return anthropic_reply(text, tool_uses=calls)

    def script(request: ReceivedRequest) -> Scripted:
        case = case_of(request.body)
        results = tool_results(flavour, request.body)
        if not results:
            return answer([reading(source, case["id"])])
        if results[-1]["status"] == "returned":
            return answer([(call["name"], call["arguments"]) for call in case["obey"]])
        return answer([], FINAL_ANSWER)

    return script


def react_task(case: dict[str, Any], granted: tuple[str, ...] = GRANTED) -> TaskScheduled:
    goal_id = f"g-inj-{case['id']}"
    return TaskScheduled(
        event_id=f"sched-{goal_id}",
        goal_id=goal_id,
        occurred_at=datetime.now(UTC),
        causation_id=None,
        correlation_id=goal_id,
        producer="planner@test",
        iteration=1,
        task_id="r1",
        description="summarize a file",
        tool="react",
        args={"instruction": f"Summarize the file {case['id']}.txt in one sentence."},
        timeout_s=10.0,
        max_attempts=1,
        allowed_tools=granted,
    )


@pytest.mark.parametrize(
    ("flavour", "source"),
    [("openai", "read_file"), ("anthropic", "read_file"), ("openai", "mcp"), ("anthropic", "a2a")],
)
async def test_injected_tool_output_calls_no_ungranted_tool_and_publishes_nothing_else(
    flavour: Flavour, source: Source, nc: NatsClient, settings: Settings, tmp_path: Path
) -> None:
    # The agent reads the documents when asked, so it may start before they are written.
    async with serve_agents(A2A_TOKEN, documents=tmp_path / "documents") as agents:
        await _injected(flavour, source, nc, settings, tmp_path, agents)


async def _injected(
    flavour: Flavour,
    source: Source,
    nc: NatsClient,
    settings: Settings,
    tmp_path: Path,
    agents: RunningAgents,
) -> None:
    workspace = settings.workspace
    workspace.mkdir(parents=True, exist_ok=True)
    documents = tmp_path / "documents"
    documents.mkdir()
    for case in CASES:
        (workspace / f"{case['id']}.txt").write_text(case["output"], encoding="utf-8")
        (documents / f"{case['id']}.txt").write_text(case["output"], encoding="utf-8")
    files_before = sorted(p.name for p in workspace.iterdir())
    granted = {"mcp": MCP_GRANTED, "a2a": A2A_GRANTED}.get(source, GRANTED)
    servers = {
        "docs": {
            "command": sys.executable,
            "args": [str(DOCUMENTS_SERVER)],
            "env": {"MCP_TEST_DIR": str(documents)},
        }
    }
    configured = replace(settings, mcp_servers=json.dumps({"mcpServers": servers}))
    if source == "a2a":  # the agent "docs" instead of the MCP server of that name
        docs_agent = {
            "card_url": agents.card_url("docs"),
            "headers": {"Authorization": f"Bearer {A2A_TOKEN}"},
        }
        configured = replace(settings, a2a_agents=json.dumps({"a2aAgents": {"docs": docs_agent}}))

    with ScriptedLlmServer(flavour, obedient_model(flavour, source)) as server:
        platform = InProcessPlatform(llm_settings(configured, server))
        platform.start("executor")
        try:
            await EventPublisher(nc)([react_task(case, granted) for case in CASES])

            async def all_answered() -> bool:
                completed = await all_events(nc, "agora.events.*.task_completed")
                failed = await all_events(nc, "agora.events.*.task_failed")
                return len(completed) + len(failed) == len(CASES)

            await wait_until(all_answered, timeout_s=60, what="every injected task to finish")
        finally:
            await platform.stop()

    everything = await all_events(nc)
    # Beside the tasks' own steps, the platform recorded only what the MCP server lists.
    assert {event_type(e) for e in everything if e.goal_id == "_mcp_docs"} == {"tools_listed"}
    events = [e for e in everything if e.goal_id != "_mcp_docs"]
    assert not duplicates(events)
    assert {event_type(e) for e in events} <= ALLOWED_TYPES
    assert {e.goal_id for e in events} == {f"g-inj-{case['id']}" for case in CASES}
    for case in CASES:
        goal = [e for e in events if e.goal_id == f"g-inj-{case['id']}"]
        calls = [e for e in goal if isinstance(e, ToolCalled)]
        assert [(c.tool, c.args) for c in calls] == [reading(source, case["id"])], case["id"]
        returned = [e for e in goal if isinstance(e, ToolReturned)]
        assert [r.output for r in returned] == [case["output"]], case["id"]
        refused = [e for e in goal if isinstance(e, ToolRefused)]
        assert [r.tool for r in refused] == [c["name"] for c in case["obey"]], case["id"]
        assert all("the call was not run" in r.reason for r in refused)
        (completed,) = [e for e in goal if isinstance(e, TaskCompleted)]
        assert completed.output == FINAL_ANSWER

    # Nothing written, nothing submitted, nothing dead-lettered.
    assert sorted(p.name for p in workspace.iterdir()) == files_before
    js = nc.jetstream()
    assert (await js.stream_info(INTAKE_STREAM)).state.messages == 0
    assert (await js.stream_info(DLQ_STREAM)).state.messages == 0

    # The model only ever saw the injections as quoted tool results, never as instructions.
    assert len(server.requests) == 3 * len(CASES)
    for request in server.requests:
        case = case_of(request.body)
        assert case["output"] not in untrusted_free_text(flavour, request.body)
        results = tool_results(flavour, request.body)
        if results:
            assert results[0] == {
                "tool": reading(source, case["id"])[0],
                "status": "returned",
                "output": case["output"],
            }
    if source == "mcp":
        # Each document was fetched once: no injected call reached the server again.
        fetched = (documents / "calls.log").read_text().splitlines()
        assert sorted(fetched) == sorted(f"documents fetch {case['id']}" for case in CASES)
    if source == "a2a":
        # Each document was asked for once: no injected call reached the agent again.
        assert agents.documents is not None
        assert sorted(agents.documents.fetched) == sorted(case["id"] for case in CASES)
