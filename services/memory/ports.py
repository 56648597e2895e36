"""What memory needs from outside, as protocols: a summarizer and an embedder.

The defaults need nothing: ``ExtractiveSummarizer`` is pure, and without an embeddings
endpoint memory ranks lexically (BM25) only. An LLM summarizer plugs in by implementing
``Summarizer`` (its ``method`` is recorded in ``memory_compacted``); the composition root
chooses it when an LLM is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.memory.working import extractive_summary

__all__ = ["Embedder", "ExtractiveSummarizer", "Summarizer"]


class Summarizer(Protocol):
    method: str

    async def summarize(self, previous: str, texts: Sequence[str], max_tokens: int) -> str:
        """One summary of ``previous`` (the summary so far) and ``texts``, within about
        ``max_tokens`` tokens (longer summaries are cut)."""
        ...


class ExtractiveSummarizer:
    method = "extractive"

    async def summarize(self, previous: str, texts: Sequence[str], max_tokens: int) -> str:
        return extractive_summary(previous, tuple(texts), max_tokens)


class Embedder(Protocol):
    @property
    def dimensions(self) -> int | None:
        """The vectors' length, once known (after the first call)."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...
