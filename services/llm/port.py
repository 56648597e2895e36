"""The one thing services need from a language model."""

from __future__ import annotations

from typing import Protocol

from services.llm.messages import LlmReply, LlmRequest

__all__ = ["LlmPort"]


class LlmPort(Protocol):
    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:
        """Answer ``request`` (streaming token deltas to ``agora.live.<goal_id>.llm`` if the
        adapter streams). Raises :class:`events.errors.LlmUnavailableError` when every provider
        of the chain failed, :class:`events.errors.LlmResponseError` when the answer is unusable.
        """
        ...
