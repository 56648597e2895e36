"""Memory's read model: given memory events -> when folded, snapshotted, restored -> then equal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.catalog import MemoryCompacted, MemoryForgotten, MemoryStored
from events.model import Event
from services.memory.state import (
    MemoryState,
    SnapshotError,
    decode_snapshot,
    encode_snapshot,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def envelope(n: int, goal_id: str) -> dict[str, object]:
    return {
        "event_id": f"e-{n}",
        "goal_id": goal_id,
        "occurred_at": NOW + timedelta(minutes=n),
        "causation_id": None,
        "correlation_id": goal_id,
        "producer": "memory@0.1.0",
    }


def history() -> list[Event]:
    events: list[Event] = []
    for n in range(60):
        goal = f"g-{n % 3}"
        events.append(
            MemoryStored(
                **envelope(n, goal),
                key=f"{goal}/1/s{n}",
                text=f"echo -> fact {n % 20} about topic {n % 5}",
                source_event_id=f"tc-{n}",
            )
        )
    events.append(MemoryForgotten(**envelope(100, "g-1"), command_id="c", key="g-1/1/s1"))
    events.append(MemoryForgotten(**envelope(101, "g-2"), command_id="c"))
    events.append(
        MemoryCompacted(
            **envelope(102, "g-0"),
            through_ordinal=10,
            observations=10,
            summary="echo -> fact 3 about topic 3",
            tokens_before=200,
            tokens_after=90,
            budget=150,
        )
    )
    return events


def fold(events: list[Event], start: int = 1) -> MemoryState:
    state = MemoryState()
    for seq, event in enumerate(events, start=start):
        state.apply(seq, event)
    return state


def answers(state: MemoryState) -> list[object]:
    queries = ("fact 3", "topic 4", "echo fact", "fact 19 topic 4")
    return [state.long_term.search(q, 10, now=NOW) for q in queries] + [
        (g, wm.tokens, wm.summary, [o.key for o in wm.observations])
        for g, wm in sorted(state.working.items())
    ]


def test_forgetting_and_compaction_fold_in_order() -> None:
    state = fold(history())

    assert state.applied_seq == 63
    assert "g-2" not in state.working
    assert all("g-2" not in item.goals for item in state.long_term.items.values())
    assert state.working["g-0"].observations[0].ordinal == 10
    assert state.stats()["forgotten_goals"] == 1


def test_a_snapshot_plus_the_tail_answers_exactly_like_a_full_fold() -> None:
    events = history()
    full = fold(events)

    restored = decode_snapshot(encode_snapshot(fold(events[:40])))
    for seq, event in enumerate(events[40:], start=41):
        restored.apply(seq, event)

    assert restored.applied_seq == full.applied_seq
    assert answers(restored) == answers(full)
    assert restored.stats() == full.stats()


def test_events_at_or_before_the_applied_sequence_are_not_folded_again() -> None:
    events = history()
    state = fold(events)
    before = answers(state)

    for seq, event in enumerate(events, start=1):
        state.apply(seq, event)

    assert answers(state) == before


def test_a_damaged_or_foreign_snapshot_is_refused_with_a_reason() -> None:
    good = encode_snapshot(fold(history()))

    with pytest.raises(SnapshotError, match="unreadable"):
        decode_snapshot(good[: len(good) // 2])
    with pytest.raises(SnapshotError, match="unreadable"):
        decode_snapshot(b"\x00garbage")
