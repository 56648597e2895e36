"""Tool names as providers accept them: OpenAI and Anthropic allow only ``[A-Za-z0-9_-]``
(at most 64), while agora names MCP tools ``<server>.<tool>``.

Each request gets a table of its own: a name that is already acceptable is kept; any other is
sanitized (and numbered on a clash), and the model's calls are mapped back. The request that
is recorded and hashed keeps agora's names; only the bytes on the wire differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from msgspec.structs import replace

from services.llm.messages import ChatMessage, LlmReply, LlmRequest, ToolCall

__all__ = ["WireNames"]

_ACCEPTED = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_OTHER = re.compile(r"[^A-Za-z0-9_-]")
_MAX = 64


@dataclass(frozen=True, slots=True)
class WireNames:
    to_wire: dict[str, str]
    from_wire: dict[str, str]

    @classmethod
    def of(cls, request: LlmRequest) -> WireNames:
        names = [tool.name for tool in request.tools]
        names += [c.name for m in request.messages for c in m.tool_calls if c.name not in names]
        taken = {name for name in names if _ACCEPTED.match(name)}
        to_wire: dict[str, str] = {}
        for name in names:
            if _ACCEPTED.match(name):
                to_wire[name] = name
                continue
            base = _OTHER.sub("_", name)[:_MAX] or "tool"
            alias, n = base, 1
            while alias in taken:
                n += 1
                suffix = f"_{n}"
                alias = base[: _MAX - len(suffix)] + suffix
            taken.add(alias)
            to_wire[name] = alias
        return cls(to_wire, {wire: name for name, wire in to_wire.items()})

    @property
    def identity(self) -> bool:
        return all(name == wire for name, wire in self.to_wire.items())

    def request(self, request: LlmRequest) -> LlmRequest:
        if self.identity:
            return request
        return replace(
            request,
            tools=tuple(replace(t, name=self.to_wire[t.name]) for t in request.tools),
            messages=tuple(self._message(m) for m in request.messages),
        )

    def _message(self, message: ChatMessage) -> ChatMessage:
        if not message.tool_calls:
            return message
        calls = tuple(replace(c, name=self.to_wire.get(c.name, c.name)) for c in message.tool_calls)
        return replace(message, tool_calls=calls)

    def reply(self, reply: LlmReply) -> LlmReply:
        if self.identity or not reply.tool_calls:
            return reply
        calls: tuple[ToolCall, ...] = tuple(
            replace(c, name=self.from_wire.get(c.name, c.name)) for c in reply.tool_calls
        )
        return replace(reply, tool_calls=calls)
