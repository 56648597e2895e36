"""The fallback chain against misbehaving scripted providers over real HTTP.

429 with Retry-After, 500s, timeouts, malformed JSON, open breakers, a concurrency limit,
every provider down, and streaming to ``agora.live.<goal_id>.llm`` on a real nats-server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from events.errors import LlmUnavailableError
from infra.llm import LlmChain, build_llm_port, build_provider
from infra.llm.chain import RetryPolicy
from infra.llm.pricing import PriceTable
from infra.logging import configure_logging, get_logger
from infra.settings import Settings
from services.llm.messages import ChatMessage, LlmRequest
from tests.llm_servers import (
    Scripted,
    ScriptedLlmServer,
    anthropic_reply,
    llm_settings,
    openai_reply,
)

REQUEST = LlmRequest(purpose="test", messages=(ChatMessage(role="user", content="hello"),))
SERVER_ERROR = Scripted(status=500, body={"error": {"message": "upstream exploded"}})


@pytest.fixture
async def chain_for() -> AsyncIterator[Callable[..., LlmChain]]:
    chains: list[LlmChain] = []

    def make(*servers: ScriptedLlmServer, nc: NatsClient | None = None, **over: Any) -> LlmChain:
        chain = build_llm_port(llm_settings(Settings(), *servers, **over), nc)
        assert chain is not None
        chains.append(chain)
        return chain

    yield make
    for chain in chains:
        await chain.aclose()


def gaps(server: ScriptedLlmServer) -> list[float]:
    times = [r.received_at for r in server.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def test_429_retry_after_seconds_is_honoured(
    openai_server: ScriptedLlmServer, chain_for: Callable[..., LlmChain]
) -> None:
    openai_server.push(
        Scripted(status=429, body={"error": "slow down"}, headers={"Retry-After": "0.4"}),
        openai_reply("finally"),
    )

    reply = await chain_for(openai_server, llm_backoff_s=0.001).complete(REQUEST, goal_id="g")

    assert reply.content == "finally"
    assert len(openai_server.requests) == 2
    (gap,) = gaps(openai_server)
    assert 0.4 <= gap < 1.5  # waited what the provider asked, not the 1 ms backoff


async def test_retry_after_as_an_http_date_is_capped(
    openai_server: ScriptedLlmServer, chain_for: Callable[..., LlmChain]
) -> None:
    in_an_hour = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    openai_server.push(
        Scripted(status=429, body={}, headers={"Retry-After": in_an_hour}), openai_reply("ok")
    )
    chain = chain_for(openai_server, llm_retry_after_max_s=0.3)

    reply = await chain.complete(REQUEST, goal_id="g")

    assert reply.content == "ok"
    (gap,) = gaps(openai_server)
    assert 0.3 <= gap < 1.5  # an hour asked, AGORA_LLM_RETRY_AFTER_MAX_S honoured


async def test_500s_then_success_backs_off_exponentially(
    anthropic_server: ScriptedLlmServer, chain_for: Callable[..., LlmChain]
) -> None:
    anthropic_server.push(SERVER_ERROR, SERVER_ERROR, anthropic_reply("recovered"))

    reply = await chain_for(anthropic_server, llm_backoff_s=0.1).complete(REQUEST, goal_id="g")

    assert reply.content == "recovered"
    first, second = gaps(anthropic_server)
    assert 0.05 <= first < 1.0  # 0.1 s jittered to 50-100 %
    assert 0.1 <= second < 1.2  # 0.2 s jittered to 50-100 %


async def test_timeouts_are_retried_then_the_next_provider_answers(
    openai_server: ScriptedLlmServer,
    anthropic_server: ScriptedLlmServer,
    chain_for: Callable[..., LlmChain],
) -> None:
    slow = Scripted(body={}, delay_s=1.5)
    openai_server.push(slow, slow)
    anthropic_server.push(anthropic_reply("from the fallback"))
    chain = chain_for(openai_server, anthropic_server, llm_timeout_s=0.3, llm_retries=1)

    reply = await chain.complete(REQUEST, goal_id="g")

    assert (reply.provider, reply.content) == ("anthropic", "from the fallback")
    assert len(openai_server.requests) == 2  # first try + one retry, both timed out
    assert len(anthropic_server.requests) == 1
    assert reply.latency_ms >= 600  # the caller waited for both timeouts


async def test_malformed_json_goes_to_the_next_provider_without_retrying(
    openai_server: ScriptedLlmServer,
    anthropic_server: ScriptedLlmServer,
    chain_for: Callable[..., LlmChain],
) -> None:
    openai_server.push(Scripted(raw=b'{"choices": [{"message": '))
    anthropic_server.push(anthropic_reply("well-formed"))

    reply = await chain_for(openai_server, anthropic_server).complete(REQUEST, goal_id="g")

    assert reply.content == "well-formed"
    assert len(openai_server.requests) == 1


async def test_a_malformed_stream_goes_to_the_next_provider(
    openai_server: ScriptedLlmServer,
    anthropic_server: ScriptedLlmServer,
    chain_for: Callable[..., LlmChain],
    nc: NatsClient,
) -> None:
    openai_server.push(Scripted(body={}, sse=['{"choices": [{"delta": {"content": "Hel', "x"]))
    anthropic_server.push(anthropic_reply("Hello"))
    chain = chain_for(openai_server, anthropic_server, nc=nc, llm_stream=True)

    reply = await chain.complete(REQUEST, goal_id="g")

    assert (reply.provider, reply.content) == ("anthropic", "Hello")


async def test_structured_output_that_is_not_json_goes_to_the_next_provider(
    openai_server: ScriptedLlmServer,
    anthropic_server: ScriptedLlmServer,
    chain_for: Callable[..., LlmChain],
) -> None:
    openai_server.push(openai_reply("Sure! Here is your plan: step 1…"))
    anthropic_server.push(anthropic_reply(tool_uses=[("plan", {"steps": []})]))
    request = LlmRequest(
        purpose="plan",
        messages=REQUEST.messages,
        response_schema={"type": "object"},
        schema_name="plan",
    )

    reply = await chain_for(openai_server, anthropic_server).complete(request, goal_id="g")

    assert json.loads(reply.content) == {"steps": []}


async def test_an_open_breaker_skips_the_provider(
    openai_server: ScriptedLlmServer,
    anthropic_server: ScriptedLlmServer,
    chain_for: Callable[..., LlmChain],
) -> None:
    openai_server.set_script(lambda _: SERVER_ERROR)
    anthropic_server.set_script(lambda _: anthropic_reply("fallback"))
    chain = chain_for(openai_server, anthropic_server, llm_retries=0, llm_breaker_threshold=2)

    for _ in range(5):
        reply = await chain.complete(REQUEST, goal_id="g")
        assert reply.provider == "anthropic"

    assert len(openai_server.requests) == 2  # opened after 2 failures, then skipped
    assert len(anthropic_server.requests) == 5
    assert chain.providers[0].breaker.state == "open"


async def test_when_every_provider_fails_the_error_says_what_each_did(
    openai_server: ScriptedLlmServer,
    anthropic_server: ScriptedLlmServer,
    chain_for: Callable[..., LlmChain],
) -> None:
    openai_server.set_script(lambda _: Scripted(status=503, body={"error": "overloaded"}))
    anthropic_server.push(
        Scripted(status=401, body={"error": {"message": "invalid x-api-key sk-ant-abcdef123456"}})
    )
    chain = chain_for(openai_server, anthropic_server, llm_retries=1)

    with pytest.raises(LlmUnavailableError) as raised:
        await chain.complete(REQUEST, goal_id="g")

    message = str(raised.value)
    assert "openai:scripted-openai: 2 attempts: HTTP 503" in message
    assert "anthropic:scripted-anthropic: HTTP 401" in message
    assert len(anthropic_server.requests) == 1  # a refusal is not retried
    assert "sk-" not in message  # neither our keys nor the one the provider echoed
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


async def test_concurrency_limit_per_provider(
    openai_server: ScriptedLlmServer, chain_for: Callable[..., LlmChain]
) -> None:
    openai_server.set_script(lambda _: dataclasses.replace(openai_reply("hi"), delay_s=0.15))
    chain = chain_for(openai_server, llm_concurrency=2)

    replies = await asyncio.gather(*(chain.complete(REQUEST, goal_id="g") for _ in range(6)))

    assert [r.content for r in replies] == ["hi"] * 6
    assert openai_server.max_in_flight == 2


async def test_streamed_deltas_arrive_on_the_goals_live_subject(
    openai_server: ScriptedLlmServer,
    chain_for: Callable[..., LlmChain],
    nc: NatsClient,
) -> None:
    text = "The answer is 391, computed step by step."
    openai_server.push(openai_reply(text))
    received: list[dict[str, Any]] = []
    finished = asyncio.Event()

    async def collect(msg: Msg) -> None:
        received.append({"subject": msg.subject, **json.loads(msg.data)})
        if received[-1]["done"]:
            finished.set()

    await nc.subscribe("agora.live.g-live.>", cb=collect)
    await nc.flush()
    chain = chain_for(openai_server, nc=nc, llm_stream=True)

    reply = await chain.complete(REQUEST, goal_id="g-live")
    await asyncio.wait_for(finished.wait(), 5)

    assert reply.content == text
    deltas = [m for m in received if not m["done"]]
    assert len(deltas) > 1  # streamed in pieces, not one blob
    assert "".join(m["delta"] for m in deltas) == text
    assert [m["seq"] for m in received] == list(range(len(received)))
    assert {m["subject"] for m in received} == {"agora.live.g-live.llm"}
    assert received[-1]["finish_reason"] == "stop"
    assert {(m["goal_id"], m["purpose"], m["provider"]) for m in received} == {
        ("g-live", "test", "openai")
    }


async def test_the_api_key_reaches_neither_errors_nor_logs(
    openai_server: ScriptedLlmServer,
    chain_for: Callable[..., LlmChain],
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = "sk-test-openai-secret-key"  # what llm_settings configures
    echo = {"error": {"message": f"Incorrect API key provided: {key}"}}
    openai_server.set_script(lambda _: Scripted(status=500, body=echo))
    configure_logging("warning", "json", cache=False)
    try:
        chain = chain_for(openai_server, llm_retries=1)
        with pytest.raises(LlmUnavailableError) as raised:
            await chain.complete(REQUEST, goal_id="g")
        get_logger("test").warning("careless", detail=f"key was {key}")
    finally:
        structlog.reset_defaults()

    logged = capsys.readouterr().err
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {key}"
    assert "llm_attempt_failed" in logged  # the failure was logged…
    assert "Incorrect API key provided: [redacted]" in str(raised.value)
    assert key not in logged  # …without the key, even when logged by careless code
    assert key not in str(raised.value)


async def test_an_error_event_mid_stream_is_retried(
    anthropic_server: ScriptedLlmServer, chain_for: Callable[..., LlmChain], nc: NatsClient
) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    start = {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 1}}}
    anthropic_server.push(Scripted(body={}, sse=[start, overloaded]), anthropic_reply("calm"))
    chain = chain_for(anthropic_server, nc=nc, llm_stream=True)

    reply = await chain.complete(REQUEST, goal_id="g")

    assert reply.content == "calm"
    assert len(anthropic_server.requests) == 2


async def test_an_answer_of_an_unexpected_shape_is_unusable_not_a_crash(
    openai_server: ScriptedLlmServer,
    anthropic_server: ScriptedLlmServer,
    chain_for: Callable[..., LlmChain],
) -> None:
    openai_server.push(Scripted(body={"choices": [{"message": {"tool_calls": [7]}}]}))
    anthropic_server.push(Scripted(body={"content": [{"type": "text", "text": "x"}], "usage": 3}))

    with pytest.raises(LlmUnavailableError) as raised:
        await chain_for(openai_server, anthropic_server).complete(REQUEST, goal_id="g")

    assert "openai:scripted-openai: unusable answer: bad tool call" in str(raised.value)
    assert "anthropic:scripted-anthropic: unusable answer (AttributeError" in str(raised.value)


async def test_after_the_cooldown_one_probe_closes_the_circuit_again(
    openai_server: ScriptedLlmServer, anthropic_server: ScriptedLlmServer
) -> None:
    now = [0.0]
    settings = llm_settings(Settings(), openai_server, anthropic_server)
    chain = LlmChain(
        [build_provider(e, settings) for e in settings.llm_endpoints],
        policy=RetryPolicy(retries=0),
        prices=PriceTable.load(),
        breaker_threshold=1,
        breaker_cooldown_s=10.0,
        clock=lambda: now[0],
    )
    openai_server.push(SERVER_ERROR, openai_reply("primary is back"))
    anthropic_server.set_script(lambda _: anthropic_reply("fallback"))
    try:
        assert (await chain.complete(REQUEST, goal_id="g")).provider == "anthropic"  # opens
        now[0] = 5.0
        assert (await chain.complete(REQUEST, goal_id="g")).provider == "anthropic"  # skipped
        assert len(openai_server.requests) == 1
        now[0] = 10.0
        reply = await chain.complete(REQUEST, goal_id="g")  # the probe
    finally:
        await chain.aclose()

    assert reply.content == "primary is back"
    assert chain.providers[0].breaker.state == "closed"


async def test_a_circuit_opening_during_retries_is_reported_as_such(
    openai_server: ScriptedLlmServer, chain_for: Callable[..., LlmChain]
) -> None:
    openai_server.set_script(lambda _: SERVER_ERROR)
    chain = chain_for(openai_server, llm_retries=3, llm_breaker_threshold=2)

    with pytest.raises(LlmUnavailableError) as raised:
        await chain.complete(REQUEST, goal_id="g")

    assert len(openai_server.requests) == 2
    assert "openai:scripted-openai: 2 attempts: HTTP 500" in str(raised.value)
    assert str(raised.value).endswith("; skipped, circuit open (retry in 30s)")
