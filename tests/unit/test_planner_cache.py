"""The planner's state cache keeps a decision's own fold, and folds again whenever that fold
might not be the goal's state."""

from __future__ import annotations

from events.catalog import TaskScheduled
from events.tools import BUILTIN_TOOLS
from services.planner.cache import GoalStates
from services.planner.decide import decide_next
from services.planner.state import evolve
from tests.unit.planner_harness import NOW, PRODUCER
from tests.unit.test_planner_state import ACCEPTED, PLAN, scheduled


def test_a_decision_s_state_is_its_events_folded_and_the_cache_keeps_it() -> None:
    states = GoalStates()
    base = states.apply("g-1", [ACCEPTED, PLAN])
    decision = decide_next(base, PLAN, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER)
    assert [type(e) for e in decision.events] == [TaskScheduled, TaskScheduled]
    folded = base
    for event in decision.events:
        folded = evolve(folded, event)
    assert decision.state == folded

    kept = states.apply_decided("g-1", decision.events, base=base, folded=decision.state)
    assert kept is decision.state
    assert states.get("g-1") is decision.state
    # The decision's events count as seen: delivered back from the stream, they change nothing.
    assert states.apply("g-1", decision.events) is decision.state


def test_the_cache_folds_the_events_when_the_goal_moved_since_the_decision() -> None:
    states = GoalStates()
    base = states.apply("g-1", [ACCEPTED, PLAN])
    decision = decide_next(base, PLAN, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER)
    assert decision.state is not None
    # Something else was folded into the goal meanwhile: the decision's fold is stale.
    moved = states.apply("g-1", [scheduled("b")])
    assert moved is not None
    assert moved.status_of("b") == "scheduled"

    after = states.apply_decided("g-1", decision.events, base=base, folded=decision.state)
    assert after is not None
    assert after != decision.state
    assert [after.status_of(task) for task in "abd"] == ["scheduled"] * 3


def test_the_cache_folds_the_events_when_one_of_them_was_seen() -> None:
    states = GoalStates()
    base = states.apply("g-1", [ACCEPTED, PLAN])
    decision = decide_next(base, PLAN, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER)
    again = states.apply_decided(
        "g-1", [ACCEPTED, *decision.events], base=base, folded=decision.state
    )
    # The fallback fold skips the seen acceptance and gives the same state by itself.
    assert again == decision.state
    assert again is not decision.state
