"""Recorded LLM calls: answered from the record when possible, recorded before use otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from events.catalog import LlmRequested, LlmResponded
from events.errors import LlmNotRecordedError
from events.model import Event, Stamp
from services.llm.messages import ChatMessage, LlmReply, LlmRequest, ToolCall, request_hash
from services.llm.recording import answers_in, recorded_call

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STAMP = Stamp(
    producer="planner@test", goal_id="g1", occurred_at=NOW, causation_id="c1", correlation_id="g1"
)
REQUEST = LlmRequest(purpose="plan", messages=(ChatMessage(role="user", content="compute 2+2"),))


class CountingModel:
    """A port answering from a fixed reply, counting how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:  # noqa: ARG002
        self.calls += 1
        return LlmReply(
            provider="p",
            model="m",
            content="4",
            tool_calls=(ToolCall(id="t1", name="calculator", arguments={"expression": "2+2"}),),
            tokens_in=10,
            tokens_out=2,
        )


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


def test_request_hash_ignores_dict_order_but_not_content() -> None:
    a = LlmRequest(purpose="plan", messages=REQUEST.messages, response_schema={"a": 1, "b": 2})
    b = LlmRequest(purpose="plan", messages=REQUEST.messages, response_schema={"b": 2, "a": 1})
    c = LlmRequest(purpose="plan", messages=REQUEST.messages, response_schema={"a": 1, "b": 3})
    assert request_hash(a) == request_hash(b) != request_hash(c)


async def test_a_new_request_is_recorded_before_and_after_the_call() -> None:
    model, publish = CountingModel(), Recorder()
    reply, responded = await recorded_call(
        model, REQUEST, stamp=STAMP, recorded={}, publish=publish
    )
    assert model.calls == 1
    assert [type(e) for e in publish.events] == [LlmRequested, LlmResponded]
    assert responded.request_hash == request_hash(REQUEST) == publish.events[0].request_hash  # type: ignore[attr-defined]
    assert reply.tool_calls[0].arguments == {"expression": "2+2"}


async def test_a_recorded_answer_is_reused_without_calling_the_model() -> None:
    first_model, publish = CountingModel(), Recorder()
    await recorded_call(first_model, REQUEST, stamp=STAMP, recorded={}, publish=publish)
    model, again = CountingModel(), Recorder()
    reply, _ = await recorded_call(
        model, REQUEST, stamp=STAMP, recorded=answers_in(publish.events), publish=again
    )
    assert model.calls == 0
    assert again.events == []
    assert reply.content == "4"
    assert reply.tool_calls[0].name == "calculator"
    assert reply.tokens_in == 10


async def test_without_a_port_an_unrecorded_request_is_refused() -> None:
    with pytest.raises(LlmNotRecordedError, match="plan"):
        await recorded_call(None, REQUEST, stamp=STAMP, recorded={}, publish=Recorder())
