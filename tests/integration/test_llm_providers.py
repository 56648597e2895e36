"""The LLM adapters against scripted providers over real HTTP on loopback.

What agora sends (tools, schemas, keys) and what it makes of the answers (tool calls,
structured output, usage, cost), through both wire formats, streamed and not.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from infra.llm import LlmChain, build_llm_port
from infra.settings import Settings
from services.llm.messages import ChatMessage, LlmRequest, ToolCall, ToolDefinition
from tests.llm_servers import ScriptedLlmServer, anthropic_reply, llm_settings, openai_reply

CALCULATOR = ToolDefinition(
    name="calculator",
    description="Evaluate an arithmetic expression.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
)
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"steps": {"type": "array", "items": {"type": "string"}}},
    "required": ["steps"],
}


def ask(text: str = "What is 17*23?", **fields: Any) -> LlmRequest:
    return LlmRequest(
        purpose="test",
        messages=(
            ChatMessage(role="system", content="You are terse."),
            ChatMessage(role="user", content=text),
        ),
        **fields,
    )


class LiveMessages:
    """A live sink that keeps what the chain would publish to ``agora.live.<goal>.llm``."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, subject: str, payload: bytes) -> None:
        self.messages.append((subject, json.loads(payload)))

    def text(self) -> str:
        return "".join(m["delta"] for _, m in self.messages)


@pytest.fixture
def live() -> LiveMessages:
    return LiveMessages()


@pytest.fixture
async def chain_for(live: LiveMessages) -> AsyncIterator[Any]:
    chains: list[LlmChain] = []

    def make(*servers: ScriptedLlmServer, **overrides: Any) -> LlmChain:
        chain = build_llm_port(llm_settings(Settings(), *servers, **overrides), live=live)
        assert chain is not None
        chains.append(chain)
        return chain

    yield make
    for chain in chains:
        await chain.aclose()


async def test_no_llm_configured_means_no_port() -> None:
    assert build_llm_port(Settings.from_env({})) is None


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_tool_calls_usage_and_cost(
    openai_server: ScriptedLlmServer, chain_for: Any, live: LiveMessages, stream: bool
) -> None:
    openai_server.push(
        openai_reply(
            None,
            tool_calls=[("calculator", {"expression": "17*23"})],
            model="gpt-4o-mini-2024-07-18",
            tokens_in=1_000,
            tokens_out=500,
        )
    )
    chain = chain_for(openai_server, llm_stream=stream)

    reply = await chain.complete(ask(tools=(CALCULATOR,)), goal_id="g-1")

    assert reply.tool_calls == (
        ToolCall(id="call_0", name="calculator", arguments={"expression": "17*23"}),
    )
    assert (reply.tokens_in, reply.tokens_out) == (1_000, 500)
    # gpt-4o-mini: $0.15 in, $0.60 out per 1M tokens.
    assert reply.cost_usd == pytest.approx((1_000 * 0.15 + 500 * 0.60) / 1e6)
    assert reply.provider == "openai"
    assert reply.finish_reason == "tool_calls"
    (sent,) = openai_server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-openai-secret-key"
    assert sent.body["model"] == "scripted-openai"
    assert sent.body["tools"][0]["function"]["name"] == "calculator"
    assert sent.body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent.stream is stream
    assert bool(live.messages) is stream  # a tool call streams no text, but ends with done


async def test_openai_sends_a_tool_conversation_back_in_its_wire_format(
    openai_server: ScriptedLlmServer, chain_for: Any
) -> None:
    openai_server.push(openai_reply("391"))
    call = ToolCall(id="call_7", name="calculator", arguments={"expression": "17*23"})
    request = LlmRequest(
        purpose="react",
        messages=(
            ChatMessage(role="user", content="17*23?"),
            ChatMessage(role="assistant", tool_calls=(call,)),
            ChatMessage(role="tool", tool_call_id="call_7", content="391"),
        ),
        tools=(CALCULATOR,),
    )

    reply = await chain_for(openai_server).complete(request, goal_id="g-1")

    assert reply.content == "391"
    messages = openai_server.requests[0].body["messages"]
    assert messages[1]["tool_calls"][0]["function"] == {
        "name": "calculator",
        "arguments": json.dumps({"expression": "17*23"}),
    }
    assert messages[2] == {"role": "tool", "content": "391", "tool_call_id": "call_7"}


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_structured_output(
    openai_server: ScriptedLlmServer, chain_for: Any, live: LiveMessages, stream: bool
) -> None:
    openai_server.push(openai_reply(json.dumps({"steps": ["add", "check"]})))

    reply = await chain_for(openai_server, llm_stream=stream).complete(
        ask(response_schema=PLAN_SCHEMA, schema_name="plan"), goal_id="g-1"
    )

    assert json.loads(reply.content) == {"steps": ["add", "check"]}
    assert live.text() == (reply.content if stream else "")
    response_format = openai_server.requests[0].body["response_format"]
    assert response_format == {
        "type": "json_schema",
        "json_schema": {"name": "plan", "schema": PLAN_SCHEMA},
    }


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_tool_use_usage_and_cost(
    anthropic_server: ScriptedLlmServer, chain_for: Any, live: LiveMessages, stream: bool
) -> None:
    anthropic_server.push(
        anthropic_reply(
            "Let me compute.",
            tool_uses=[("calculator", {"expression": "17*23"})],
            model="claude-3-5-haiku-20241022",
            tokens_in=2_000,
            tokens_out=100,
        )
    )

    reply = await chain_for(anthropic_server, llm_stream=stream).complete(
        ask(tools=(CALCULATOR,), max_tokens=300), goal_id="g-1"
    )

    assert reply.content == "Let me compute."
    assert live.text() == (reply.content if stream else "")
    assert reply.tool_calls == (
        ToolCall(id="toolu_0", name="calculator", arguments={"expression": "17*23"}),
    )
    assert (reply.tokens_in, reply.tokens_out) == (2_000, 100)
    assert reply.cost_usd == pytest.approx((2_000 * 0.80 + 100 * 4.00) / 1e6)
    assert reply.finish_reason == "tool_use"
    (sent,) = anthropic_server.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-test-anthropic-secret-key"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["system"] == "You are terse."
    assert sent.body["max_tokens"] == 300
    assert sent.body["messages"] == [{"role": "user", "content": "What is 17*23?"}]
    assert sent.body["tools"][0]["input_schema"] == CALCULATOR.parameters


async def test_anthropic_tool_results_share_one_user_turn(
    anthropic_server: ScriptedLlmServer, chain_for: Any
) -> None:
    anthropic_server.push(anthropic_reply("both done"))
    calls = (
        ToolCall(id="t1", name="calculator", arguments={"expression": "1+1"}),
        ToolCall(id="t2", name="calculator", arguments={"expression": "2+2"}),
    )
    request = LlmRequest(
        purpose="react",
        messages=(
            ChatMessage(role="user", content="two sums"),
            ChatMessage(role="assistant", content="on it", tool_calls=calls),
            ChatMessage(role="tool", tool_call_id="t1", content="2"),
            ChatMessage(role="tool", tool_call_id="t2", content="4"),
        ),
        tools=(CALCULATOR,),
    )

    await chain_for(anthropic_server).complete(request, goal_id="g-1")

    messages = anthropic_server.requests[0].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [b["type"] for b in messages[1]["content"]] == ["text", "tool_use", "tool_use"]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "2"},
        {"type": "tool_result", "tool_use_id": "t2", "content": "4"},
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_structured_output_through_a_forced_tool(
    anthropic_server: ScriptedLlmServer, chain_for: Any, stream: bool
) -> None:
    anthropic_server.push(anthropic_reply(tool_uses=[("plan", {"steps": ["add", "check"]})]))

    reply = await chain_for(anthropic_server, llm_stream=stream).complete(
        ask(response_schema=PLAN_SCHEMA, schema_name="plan"), goal_id="g-1"
    )

    assert json.loads(reply.content) == {"steps": ["add", "check"]}
    assert reply.tool_calls == ()  # the schema tool is the answer, not a call to run
    body = anthropic_server.requests[0].body
    assert body["tool_choice"] == {"type": "tool", "name": "plan"}
    assert body["tools"][0]["name"] == "plan"
    assert body["tools"][0]["input_schema"] == PLAN_SCHEMA
