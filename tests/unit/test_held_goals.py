"""The live trace follower holds a running goal's events only up to a count and an age."""

from __future__ import annotations

from datetime import UTC, datetime

from events.catalog import GoalAccepted, TaskStarted
from events.model import Event
from infra.traces.held import HeldGoals

AT = datetime(2026, 12, 7, tzinfo=UTC)


def _accepted(goal_id: str) -> GoalAccepted:
    return GoalAccepted(
        event_id=f"{goal_id}-0", goal_id=goal_id, occurred_at=AT, causation_id=None,
        correlation_id=goal_id, producer="planner@test", command_id=goal_id, text="t",
    )  # fmt: skip


def _step(goal_id: str, n: int) -> TaskStarted:
    return TaskStarted(
        event_id=f"{goal_id}-{n}", goal_id=goal_id, occurred_at=AT, causation_id=None,
        correlation_id=goal_id, producer="executor@test", iteration=1, task_id=f"t{n}",
        tool="echo", attempt=1,
    )  # fmt: skip


def test_a_goal_that_reaches_the_count_is_let_go_with_its_events() -> None:
    held = HeldGoals[Event](max_events=3, max_age_s=60)
    held.begin("g", now=0)
    events: list[Event] = [_accepted("g"), _step("g", 1)]
    assert [held.add("g", e) for e in events] == [None, None]
    third = _step("g", 2)
    assert held.add("g", third) == ("g", [*events, third])
    assert (len(held), held.events) == (0, 0)
    assert held.add("g", _step("g", 3)) is None  # let go: nothing more is kept
    assert held.events == 0


def test_goals_held_too_long_are_let_go_oldest_first_and_the_young_stay() -> None:
    held = HeldGoals[Event](max_events=100, max_age_s=10)
    for n, goal_id in enumerate(("old", "older-than-young", "young")):
        held.begin(goal_id, now=n * 4)  # begun at 0, 4 and 8
        held.add(goal_id, _accepted(goal_id))
    assert held.overdue(now=9) == []
    let_go = held.overdue(now=14.5)  # 14.5 - 4 >= 10
    assert [goal_id for goal_id, _ in let_go] == ["old", "older-than-young"]
    assert [len(events) for _, events in let_go] == [1, 1]
    assert (len(held), held.events) == (1, 1)
    assert held.end("young") == ("young", [_accepted("young")])
    assert held.end("young") is None


def test_events_of_goals_not_begun_are_not_held_and_a_second_begin_keeps_the_first() -> None:
    held = HeldGoals[Event](max_events=5, max_age_s=10)
    assert held.add("unseen", _step("unseen", 1)) is None
    held.begin("g", now=0)
    held.add("g", _accepted("g"))
    held.begin("g", now=100)
    assert held.events == 1
    assert [g for g, _ in held.overdue(now=10)] == ["g"]  # still held from 0
