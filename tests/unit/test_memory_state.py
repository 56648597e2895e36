"""Memory's read model: given memory events -> when folded, snapshotted, restored -> then equal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.catalog import (
    GoalCompleted,
    MemoryCompacted,
    MemoryForgotten,
    MemoryStored,
    TaskCompleted,
)
from events.model import Event
from services.memory.decide import observation_of
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


def completed_task(n: int, goal: str, output: str) -> TaskCompleted:
    return TaskCompleted(
        **{**envelope(n, goal), "producer": "executor@0.1.0"},
        iteration=1,
        task_id=f"s{n}",
        tool="echo",
        output=output,
        attempts=1,
        duration_ms=1.0,
    )


def test_a_completed_task_is_indexed_as_its_observation_with_provenance() -> None:
    state = fold([completed_task(1, "g-a", "the launch code is BLUE HERON")])

    [item] = state.long_term.search("launch code", 5, now=NOW)
    assert (item.key, item.text) == ("g-a/1/s1", "echo -> the launch code is BLUE HERON")
    assert (item.goal_id, item.source_event_id, item.kind) == ("g-a", "e-1", "observation")
    assert [o.key for o in state.working["g-a"].observations] == ["g-a/1/s1"]
    assert state.take_touched() == {"g-a"}
    assert state.take_touched() == set()


def test_an_older_logs_observation_of_an_indexed_task_folds_once() -> None:
    task = completed_task(1, "g-a", "blue heron")
    older = observation_of(task)  # what an older memory published for it

    state = fold([task, older])

    [item] = state.long_term.search("heron", 5, now=NOW)
    assert item.key == "g-a/1/s1"
    indexed = state.long_term.lookup(item.key)
    assert indexed is not None
    assert indexed.mentions == 1  # not a repeat of its own text
    assert len(state.working["g-a"].observations) == 1


def test_a_goal_completed_after_revisions_owes_lessons_until_they_are_in_the_log() -> None:
    completed = GoalCompleted(**envelope(1, "g-r"), result="r", iterations=2, score=1.0)
    lesson = MemoryStored(
        **envelope(2, "g-r"), key="g-r/lesson/1", text="t", kind="lesson", source_event_id="v"
    )
    once = GoalCompleted(**envelope(3, "g-once"), result="r", iterations=1, score=1.0)

    state = fold([completed, once])
    assert state.lessons_due == {"g-r": 1}  # a goal right the first time teaches nothing
    # The debt survives a restart from a snapshot.
    assert decode_snapshot(encode_snapshot(state)).lessons_due == {"g-r": 1}
    state.apply(3, lesson)
    assert state.lessons_due == {}


def test_the_last_compaction_of_a_goal_is_known_by_its_sequence() -> None:
    state = fold(history())
    assert state.compaction_seq == {"g-0": len(history())}
    restored = decode_snapshot(encode_snapshot(state))
    assert restored.compaction_seq == state.compaction_seq
