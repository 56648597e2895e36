"""Working memory: given a goal's observations -> when over budget -> then compacted within it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from events.catalog import MemoryCompacted
from events.codec import decode_event, encode
from events.model import Stamp
from services.memory.decide import compaction
from services.memory.ports import ExtractiveSummarizer, Summarizer
from services.memory.working import (
    GoalWorkingMemory,
    estimate_tokens,
    extractive_summary,
    plan_compaction,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STAMP = Stamp(
    producer="memory@0.1.0",
    goal_id="g-1",
    occurred_at=NOW,
    causation_id="tc-1",
    correlation_id="g-1",
)


def memory_of(*texts: str) -> GoalWorkingMemory:
    memory = GoalWorkingMemory()
    for n, text in enumerate(texts):
        memory.observe(f"g-1/1/s{n}", text)
    return memory


def compact(memory: GoalWorkingMemory, budget: int) -> MemoryCompacted | None:
    plan = plan_compaction(memory, budget)
    if plan is None:
        return None
    summary = asyncio.run(
        ExtractiveSummarizer().summarize(plan.previous_summary, plan.texts, plan.summary_budget)
    )
    event = compaction(plan, summary, "extractive", budget, STAMP)
    memory.compacted(event.through_ordinal, event.summary)
    return event


def test_tokens_are_estimated_as_characters_over_four_rounded_up() -> None:
    assert [estimate_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]


def test_within_budget_nothing_is_compacted() -> None:
    assert plan_compaction(memory_of("echo -> short"), budget=100) is None


def test_over_budget_the_oldest_are_compacted_and_the_goal_ends_within_half_its_budget() -> None:
    memory = memory_of(*(f"calculator -> result {n} of the long computation." for n in range(40)))
    before = memory.tokens

    event = compact(memory, budget=200)

    assert event is not None
    assert event.tokens_before == before > 200
    assert event.tokens_after == memory.tokens <= 100
    assert event.observations == event.through_ordinal == 40 - len(memory.observations)
    assert memory.observations[-1].key == "g-1/1/s39"  # the newest stay verbatim
    assert decode_event(encode(event)) == event


def test_five_hundred_observations_never_leave_the_budget_once_compacted() -> None:
    memory = GoalWorkingMemory()
    budget = 300
    for n in range(500):
        memory.observe(f"g-1/1/s{n}", f"http_get -> page {n} says the price of item {n % 7} rose.")
        compact(memory, budget)
        assert memory.tokens <= budget

    assert memory.compactions > 10
    assert memory.summary


def test_the_same_compaction_seen_twice_is_folded_once() -> None:
    memory = memory_of(*(f"echo -> line {n}" for n in range(30)))
    event = compact(memory, budget=40)
    assert event is not None
    kept = list(memory.observations)

    memory.compacted(event.through_ordinal, event.summary)

    assert memory.observations == kept
    assert memory.compactions == 1


def test_an_observation_arriving_again_is_not_counted_twice() -> None:
    memory = memory_of("echo -> a")
    memory.observe("g-1/1/s0", "echo -> a")

    assert len(memory.observations) == 1


def test_the_extractive_summary_keeps_recurring_subjects_in_order_within_budget() -> None:
    texts = (
        "The deploy of service alpha failed. Weather was nice.",
        "Service alpha deploy retried with more memory.",
        "Random unrelated remark about lunch.",
        "Service alpha deploy succeeded after the retry.",
    )

    summary = extractive_summary("", texts, max_tokens=25)

    assert estimate_tokens(summary) <= 25
    assert "alpha" in summary
    assert "lunch" not in summary
    assert summary == extractive_summary("", texts, max_tokens=25)  # deterministic


class LongWindedSummarizer:
    """What an LLM summarizer plugged into the port might do: ignore the budget."""

    method = "llm:test"

    async def summarize(self, previous: str, texts: Sequence[str], max_tokens: int) -> str:
        return f"{previous} {len(texts)} lines: " + "a very long summary " * (max_tokens * 2)


def test_a_summary_over_its_budget_is_cut_so_the_goal_stays_within_budget() -> None:
    memory = memory_of(*(f"echo -> line number {n} of many" for n in range(50)))
    plan = plan_compaction(memory, budget=100)
    assert plan is not None
    summarizer: Summarizer = LongWindedSummarizer()

    summary = asyncio.run(summarizer.summarize(plan.previous_summary, plan.texts, 25))
    event = compaction(plan, summary, summarizer.method, 100, STAMP)
    memory.compacted(event.through_ordinal, event.summary)

    assert event.method == "llm:test"
    assert estimate_tokens(event.summary) <= plan.summary_budget
    assert memory.tokens == event.tokens_after <= 100
