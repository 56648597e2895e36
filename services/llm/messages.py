"""The provider-neutral shape of an LLM request and its reply."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

__all__ = [
    "ChatMessage",
    "LlmReply",
    "LlmRequest",
    "ToolCall",
    "ToolDefinition",
    "request_hash",
]

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """A tool the model asked for. ``arguments`` are parsed JSON, not yet validated."""

    id: str
    name: str
    arguments: dict[str, Any] = {}


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # set on role="tool": which call this answers


class ToolDefinition(msgspec.Struct, frozen=True, kw_only=True):
    """A function the model may call; ``parameters`` is its arguments' JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]


class LlmRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that determines a model's answer, and nothing else.

    ``purpose`` names the decision (``plan``, ``react``, ``judge``…) for the trajectory.
    ``response_schema`` asks for JSON-schema structured output named ``schema_name``.
    """

    purpose: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolDefinition, ...] = ()
    response_schema: dict[str, Any] | None = None
    schema_name: str = "response"
    max_tokens: int | None = None
    temperature: float = 0.0


class LlmReply(msgspec.Struct, frozen=True, kw_only=True):
    """What a provider answered, with the accounting every call is recorded with."""

    provider: str
    model: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    finish_reason: str = ""
    # The model the answering endpoint was asked for (``model`` is the one that answered).
    request_model: str = ""


def request_hash(request: LlmRequest) -> str:
    """A stable digest of the request, provider-independent: how a rerun finds answers.

    The provider and model are deliberately left out, so a recorded goal reruns the same
    way whichever provider of the fallback chain answered it.
    """
    canonical = msgspec.json.encode(request, order="sorted")
    return hashlib.sha256(canonical).hexdigest()[:32]
