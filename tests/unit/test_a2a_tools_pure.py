"""Remote A2A agents as tools, without I/O: configuration, the card as the agent's one tool,
the message a delegation sends, the agent's answers (streamed or not) as results or clear
failures, and the breaker each agent's calls share."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from a2a.types import (
    AgentCard,
    AgentInterface,
    AgentSkill,
    Artifact,
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from events.errors import ConfigurationError, ToolError
from events.tools import argument_problems
from infra.a2a_client.config import check_names, parse_agents
from infra.a2a_client.results import agent_listing, answer_of, folded, message_of
from infra.mcp import McpTools
from infra.mcp.config import resolve_headers
from services.executor.main import connection_registered

CARD_URL = "https://agents.example/research/.well-known/agent-card.json"


def _agents(**agents: dict[str, Any]) -> str:
    return json.dumps({"a2aAgents": agents})


def test_agents_are_configured_like_mcp_servers_and_a_bad_entry_says_what_to_fix(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken-from-a-file\n")
    [agent] = parse_agents(
        _agents(research={"card_url": CARD_URL, "bearer_token_file": str(token), "timeout_s": 9})
    )
    assert (agent.tool, agent.origin, agent.timeout_s, agent.trusted) == (
        "a2a.research",
        "a2a:research",
        9.0,
        False,
    )
    assert "t0ken" not in repr(agent)
    headers, secrets = resolve_headers(agent, {})
    assert headers == {"Authorization": "Bearer t0ken-from-a-file"}
    assert secrets == ["t0ken-from-a-file"]
    with_credentials = "https://me:pw@agents.example/card.json?token=x"
    [shown] = parse_agents(_agents(x={"card_url": with_credentials}))
    assert shown.describe() == "https://agents.example/card.json"
    file = tmp_path / "agents.json"
    file.write_text(_agents(research={"card_url": CARD_URL}))
    assert parse_agents(str(file))[0].card_url == CARD_URL

    for config, says in [
        (_agents(research={}), "card_url (the agent card's URL) is required"),
        (_agents(research={"card_url": "ftp://x"}), "card_url must start with http"),
        (_agents(research={"card_url": CARD_URL, "command": "x"}), "unknown keys ['command']"),
        (_agents(**{"a.b": {"card_url": CARD_URL}}), "its tool is a2a.<name>"),
        (json.dumps({"mcpServers": {}}), 'expected {"a2aAgents"'),
    ]:
        with pytest.raises(ConfigurationError, match=re.escape(says)):
            parse_agents(config)
    with pytest.raises(ConfigurationError, match="comes from the environment variable"):
        resolve_headers(
            parse_agents(_agents(x={"card_url": CARD_URL, "bearer_token_env": "NO"}))[0], {}
        )
    agents = parse_agents(_agents(notes={"card_url": CARD_URL}))
    with pytest.raises(ConfigurationError, match="has the name of an MCP server"):
        check_names(agents, ["notes"])
    with pytest.raises(ConfigurationError, match="named 'a2a'"):
        check_names(agents, ["a2a"])
    check_names(agents, ["time"])


def _card() -> AgentCard:
    return AgentCard(
        name="Research",
        description="finds things out.",
        supported_interfaces=[
            AgentInterface(url="https://x/a2a", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        skills=[AgentSkill(id="s", name="Search", description="searches the web")],
    )


def test_an_agent_is_one_tool_described_by_its_card_taking_a_message() -> None:
    [agent] = parse_agents(_agents(research={"card_url": CARD_URL, "trusted": True}))
    listing = agent_listing(agent, _card())
    [spec] = listing.specs.values()
    assert spec.name == "a2a.research"
    assert spec.description == (
        "Delegate a task to the A2A agent Research: finds things out. Skills: Search: searches "
        "the web"
    )
    assert (spec.origin, spec.trusted, spec.default_timeout_s) == ("a2a:research", True, 120.0)
    assert argument_problems(spec, {"text": "find x", "data": {"k": 1}}) == []
    assert argument_problems(spec, {"text": ""})
    assert argument_problems(spec, {"text": "x", "extra": 1})
    assert argument_problems(spec, {"data": {}})
    message = message_of({"text": "find x", "data": {"k": "v"}}, message_id="m-1")
    assert (message.message_id, message.role) == ("m-1", Role.ROLE_USER)
    assert [p.WhichOneof("content") for p in message.parts] == ["text", "data"]
    long = _card()
    long.description = "x" * 5000
    assert len(agent_listing(agent, long).specs["a2a.research"].description) == 2000


def _task(state: int, *, said: str = "", artifacts: tuple[str, ...] = ()) -> Task:
    task = Task(id="t-1", context_id="c-1", status=TaskStatus(state=state))  # type: ignore[arg-type]
    if said:
        task.status.message.CopyFrom(Message(message_id="s", parts=[Part(text=said)]))
    for n, text in enumerate(artifacts):
        task.artifacts.append(Artifact(artifact_id=f"a{n}", name=f"n{n}", parts=[Part(text=text)]))
    return task


def test_a_completed_task_is_its_artifacts_and_any_other_end_a_clear_permanent_failure() -> None:
    done = answer_of("research", _task(TaskState.TASK_STATE_COMPLETED, artifacts=("one", "two")))
    assert done is not None
    assert done.text == "one\n\ntwo"
    assert done.structured["artifacts"][1] == {"artifact_id": "a1", "name": "n1", "text": "two"}
    said_only = answer_of("research", _task(TaskState.TASK_STATE_COMPLETED, said="the answer"))
    assert said_only is not None
    assert said_only.text == "the answer"
    reply = answer_of("research", Message(message_id="m", parts=[Part(text="hi")]))
    assert reply is not None
    assert reply.text == "hi"
    for state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING):
        assert answer_of("research", _task(state)) is None  # still running: asked again
    for state, says in [
        (TaskState.TASK_STATE_FAILED, "A2A agent research failed task t-1: out of credit"),
        (TaskState.TASK_STATE_REJECTED, "A2A agent research rejected task t-1: out of credit"),
        (TaskState.TASK_STATE_CANCELED, "A2A agent research cancelled task t-1: out of credit"),
        (TaskState.TASK_STATE_INPUT_REQUIRED, "asked for input on task t-1 (out of credit)"),
        (TaskState.TASK_STATE_AUTH_REQUIRED, "asked for authorization on task t-1"),
        (TaskState.TASK_STATE_UNSPECIFIED, "without a state agora knows"),
    ]:
        with pytest.raises(ToolError, match=re.escape(says)) as raised:
            answer_of("research", _task(state, said="out of credit"))
        assert not raised.value.transient


def test_a_stream_is_folded_into_the_task_it_is_about() -> None:
    started = folded(None, StreamResponse(task=_task(TaskState.TASK_STATE_WORKING)))
    assert isinstance(started, Task)
    chunk = TaskArtifactUpdateEvent(
        task_id="t-1", artifact=Artifact(artifact_id="a", parts=[Part(text="hel")])
    )
    more = TaskArtifactUpdateEvent(
        task_id="t-1", artifact=Artifact(artifact_id="a", parts=[Part(text="lo")]), append=True
    )
    task = folded(
        folded(started, StreamResponse(artifact_update=chunk)), StreamResponse(artifact_update=more)
    )
    assert isinstance(task, Task)
    assert [p.text for p in task.artifacts[0].parts] == ["hel", "lo"]
    status = TaskStatusUpdateEvent(
        task_id="t-1", status=TaskStatus(state=TaskState.TASK_STATE_COMPLETED)
    )
    ended = folded(task, StreamResponse(status_update=status))
    assert isinstance(ended, Task)
    done = answer_of("research", ended)
    assert done is not None
    assert done.text == "hel\nlo"
    assert not started.artifacts  # folding copies: what was folded before stays as it was
    with pytest.raises(ToolError, match="before the task it is about"):
        folded(None, StreamResponse(status_update=status))


def test_every_delegation_to_one_agent_shares_its_breaker() -> None:
    [agent] = parse_agents(_agents(research={"card_url": CARD_URL}))
    specs = agent_listing(agent, _card()).specs
    [registered] = connection_registered(agent.name, agent.origin, specs, McpTools([]))
    assert registered.destination({"text": "anything"}) == "a2a:research"
