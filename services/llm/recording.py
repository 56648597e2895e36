"""Recorded LLM calls: every call is an ``llm_requested`` / ``llm_responded`` pair in the log.

A service asks :func:`recorded_call` instead of the port. If the goal's history already holds
an answer to the same request (same :func:`request_hash`), that answer is used and nothing
reaches the network: this is what makes a redelivered input, a replay and a rerun
deterministic. Otherwise the request is made durable first, then the port is called, then
the answer is recorded. A crash between the two leaves an ``llm_requested`` without answer;
the redelivered input asks again (LLM calls are at-least-once; their *use* is exactly-once,
because the decision that consumes the answer has a deterministic event id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Protocol

from events.catalog import LlmRequested, LlmResponded
from events.errors import LlmNotRecordedError
from events.model import Event, Stamp
from services.llm.messages import LlmReply, LlmRequest, ToolCall, request_hash
from services.llm.port import LlmPort

__all__ = [
    "Publish",
    "answers_in",
    "recorded_call",
    "reply_from_event",
    "requested_event",
    "responded_event",
]

_SUMMARY_CHARS = 200


class Publish(Protocol):
    def __call__(self, events: Sequence[Event]) -> Awaitable[None]:
        """Publish ``events`` in order; return once every one is durably acknowledged."""
        ...


def answers_in(history: Iterable[Event]) -> dict[str, LlmResponded]:
    """The recorded answers of a goal, by request hash (the first answer wins)."""
    answers: dict[str, LlmResponded] = {}
    for event in history:
        if isinstance(event, LlmResponded):
            answers.setdefault(event.request_hash, event)
    return answers


def requested_event(
    stamp: Stamp, request: LlmRequest, rhash: str, *, model: str = ""
) -> LlmRequested:
    last = request.messages[-1].content if request.messages else ""
    tools = ",".join(tool.name for tool in request.tools)
    summary = last[:_SUMMARY_CHARS] + (f" [tools: {tools}]" if tools else "")
    return LlmRequested(
        **stamp.envelope("llm_requested", rhash),
        provider="",
        model=model,
        request_hash=rhash,
        purpose=request.purpose,
        summary=summary,
    )


def responded_event(stamp: Stamp, rhash: str, reply: LlmReply) -> LlmResponded:
    return LlmResponded(
        **stamp.envelope("llm_responded", rhash),
        provider=reply.provider,
        model=reply.model,
        request_hash=rhash,
        content=reply.content,
        tool_calls=tuple(
            {"id": call.id, "name": call.name, "arguments": call.arguments}
            for call in reply.tool_calls
        ),
        tokens_in=reply.tokens_in,
        tokens_out=reply.tokens_out,
        cost_usd=reply.cost_usd,
        latency_ms=reply.latency_ms,
        finish_reason=reply.finish_reason,
        request_model=reply.request_model,
    )


def reply_from_event(event: LlmResponded) -> LlmReply:
    return LlmReply(
        provider=event.provider,
        model=event.model,
        content=event.content,
        tool_calls=tuple(
            ToolCall(
                id=str(call.get("id", "")),
                name=str(call.get("name", "")),
                arguments=dict(call.get("arguments") or {}),
            )
            for call in event.tool_calls
        ),
        tokens_in=event.tokens_in,
        tokens_out=event.tokens_out,
        cost_usd=event.cost_usd,
        latency_ms=event.latency_ms,
        finish_reason=event.finish_reason,
        request_model=event.request_model,
    )


async def recorded_call(
    port: LlmPort | None,
    request: LlmRequest,
    *,
    stamp: Stamp,
    recorded: Mapping[str, LlmResponded],
    publish: Publish,
) -> tuple[LlmReply, LlmResponded]:
    """The answer to ``request``: from the record if present, else from ``port``, recorded.

    ``port=None`` means "record only" (a rerun without ``--live-llm``): a request that is
    not in the record raises :class:`LlmNotRecordedError` instead of reaching the network.
    """
    rhash = request_hash(request)
    hit = recorded.get(rhash)
    if hit is not None:
        return reply_from_event(hit), hit
    if port is None:
        raise LlmNotRecordedError(
            f"no recorded answer for this {request.purpose!r} request (hash {rhash}); "
            "the code now asks the model something it did not ask before"
        )
    await publish([requested_event(stamp, request, rhash)])
    reply = await port.complete(request, goal_id=stamp.goal_id)
    responded = responded_event(stamp, rhash, reply)
    await publish([responded])
    return reply, responded
