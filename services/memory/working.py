"""Working memory: what a planner or model sees of one goal, kept within a token budget. Pure.

A goal's observations (its ``memory_stored`` items of kind ``observation``) are kept in order,
each with an ordinal that never changes. When their tokens exceed the budget, the oldest are
replaced by a summary: ``plan_compaction`` picks them, a summarizer (extractive by default,
see ``extractive_summary``; an LLM through the ``Summarizer`` port) writes the summary, and the
result is recorded as a ``memory_compacted`` event that every replica folds the same way.

Tokens are estimated, not counted by a model's tokenizer: ``ceil(characters / 4)``, the usual
rule of thumb for English text with BPE tokenizers. Deterministic and model-independent.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from services.memory.bm25 import tokenize

__all__ = [
    "CHARS_PER_TOKEN",
    "CompactionPlan",
    "GoalWorkingMemory",
    "Observation",
    "estimate_tokens",
    "extractive_summary",
    "plan_compaction",
]

CHARS_PER_TOKEN = 4

# Sentence ends: . ! ? followed by space, or a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class Observation:
    ordinal: int
    key: str
    text: str
    tokens: int


@dataclass(slots=True)
class GoalWorkingMemory:
    """One goal's working memory: the summary of compacted observations, then the rest."""

    observations: list[Observation] = field(default_factory=list)
    summary: str = ""
    compacted_through: int = 0  # observations with a lower ordinal live in the summary
    compactions: int = 0
    next_ordinal: int = 0
    keys: set[str] = field(default_factory=set)

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.summary) + sum(o.tokens for o in self.observations)

    def observe(self, key: str, text: str) -> None:
        if key in self.keys:
            return
        self.keys.add(key)
        ordinal = self.next_ordinal
        self.next_ordinal += 1
        if ordinal >= self.compacted_through:
            self.observations.append(Observation(ordinal, key, text, estimate_tokens(text)))

    def compacted(self, through_ordinal: int, summary: str) -> None:
        if through_ordinal <= self.compacted_through:
            return  # an older compaction, seen again
        self.summary = summary
        self.compacted_through = through_ordinal
        self.compactions += 1
        self.observations = [o for o in self.observations if o.ordinal >= through_ordinal]

    def forget(self, key: str) -> None:
        self.observations = [o for o in self.observations if o.key != key]


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    through_ordinal: int
    previous_summary: str
    texts: tuple[str, ...]  # the observations to fold into the summary, oldest first
    summary_budget: int  # tokens the summary may use
    tokens_before: int
    tokens_kept: int  # tokens of the observations that stay

    def tokens_after(self, summary: str) -> int:
        return estimate_tokens(summary) + self.tokens_kept


def plan_compaction(memory: GoalWorkingMemory, budget: int) -> CompactionPlan | None:
    """Which observations to compact, if the goal is over ``budget``; None if it is not.

    After compaction the goal uses at most half its budget (a quarter for the summary, a
    quarter for the newest observations), so it does not compact again on the next one.
    """
    before = memory.tokens
    if before <= budget or not memory.observations:
        return None
    summary_budget = max(1, budget // 4)
    room = max(0, budget // 2 - summary_budget)
    kept: list[Observation] = []
    for observation in reversed(memory.observations):
        if sum(o.tokens for o in kept) + observation.tokens > room:
            break
        kept.append(observation)
    compacted = memory.observations[: len(memory.observations) - len(kept)]
    if not compacted:  # everything fits but the summary: compact the oldest anyway
        compacted, kept = memory.observations[:1], list(reversed(memory.observations[1:]))
    return CompactionPlan(
        through_ordinal=compacted[-1].ordinal + 1,
        previous_summary=memory.summary,
        texts=tuple(o.text for o in compacted),
        summary_budget=summary_budget,
        tokens_before=before,
        tokens_kept=sum(o.tokens for o in kept),
    )


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def extractive_summary(previous: str, texts: tuple[str, ...], max_tokens: int) -> str:
    """The most representative sentences of ``previous`` + ``texts``, in their original order,
    within ``max_tokens``.

    A sentence scores by how common its words are across everything being summarized (so
    recurring subjects survive and one-off noise does not), divided by the square root of its
    length; ties go to the newer sentence. Repeated sentences are kept once.
    """
    candidates: list[str] = []
    seen: set[str] = set()
    for sentence in [*_sentences(previous), *(s for t in texts for s in _sentences(t))]:
        if sentence not in seen:
            seen.add(sentence)
            candidates.append(sentence)
    frequency: Counter[str] = Counter(t for s in candidates for t in set(tokenize(s)))

    def score(position: int) -> tuple[float, int]:
        terms = tokenize(candidates[position])
        weight = sum(frequency[t] for t in set(terms)) / math.sqrt(len(terms) or 1)
        return (-weight, -position)

    limit = max_tokens * CHARS_PER_TOKEN
    chosen: list[int] = []
    used = 0
    for position in sorted(range(len(candidates)), key=score):
        cost = len(candidates[position]) + (1 if chosen else 0)
        if used + cost <= limit:
            chosen.append(position)
            used += cost
    if not chosen and candidates:  # even the best sentence is too long: keep its beginning
        return candidates[sorted(range(len(candidates)), key=score)[0]][:limit]
    return " ".join(candidates[p] for p in sorted(chosen))
