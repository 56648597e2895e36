"""What the chain needs from one provider adapter: a single attempt at an answer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from infra.llm.transport import AttemptError
from infra.settings import LlmEndpoint
from services.llm.messages import LlmReply, LlmRequest

__all__ = ["DeltaSink", "Provider", "parse_arguments", "require", "require_json_content"]

# Receives each piece of streamed text, in order, as it arrives.
DeltaSink = Callable[[str], Awaitable[None]]


class Provider(Protocol):
    endpoint: LlmEndpoint

    async def attempt(self, request: LlmRequest, *, on_delta: DeltaSink | None) -> LlmReply:
        """One HTTP exchange; raises :class:`AttemptError`. Cost and latency are left at 0:
        the chain fills them in. ``on_delta`` set: stream, and pass text deltas to it."""
        ...

    async def aclose(self) -> None: ...


def require(condition: bool, what: str) -> None:
    """An answer missing something the API promises is unusable, not a crash."""
    if not condition:
        raise AttemptError(f"unusable answer: {what}", unusable=True)


def parse_arguments(raw: object, tool: str) -> dict[str, Any]:
    """A tool call's arguments: a JSON object (given as text by OpenAI, as JSON by Anthropic)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise AttemptError(
                f"unusable answer: arguments of tool call {tool!r} are not valid JSON",
                unusable=True,
            ) from None
    require(isinstance(raw, dict), f"arguments of tool call {tool!r} are not a JSON object")
    assert isinstance(raw, dict)
    return raw


def require_json_content(request: LlmRequest, content: str) -> None:
    """Structured output was asked for: the content must at least be JSON (the caller checks
    it against the schema, with its own error messages to send back to the model)."""
    if request.response_schema is None:
        return
    try:
        json.loads(content)
    except ValueError:
        raise AttemptError(
            "unusable answer: structured output requested but the content is not JSON",
            unusable=True,
        ) from None
