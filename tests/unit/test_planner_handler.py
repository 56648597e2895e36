"""The planner's handler over its ports: when it reads the record, what a failed append does."""

from __future__ import annotations

import msgspec
import pytest

from events.catalog import GoalCompleted, TaskScheduled
from events.errors import LeaseLostError
from tests.unit.planner_harness import run_now
from tests.unit.test_planner_loop import GOAL, ORDERED, PlannerHarness


def test_an_acceptance_delivered_the_first_time_is_planned_without_reading() -> None:
    harness = PlannerHarness(ORDERED)
    harness.accept()
    harness.completed("s1", "391")

    assert harness.store.loads == 0  # the cache is the goal's state: nothing read back


def test_a_goal_the_replica_has_not_seen_is_read_from_the_record_once() -> None:
    harness = PlannerHarness(ORDERED)
    harness.accept()
    harness.planner.states.clear()  # a takeover: the new active replica starts cold

    events = harness.completed("s1", "391")
    harness.completed("s2", "the answer is 391")

    assert [e.task_id for e in events if isinstance(e, TaskScheduled)] == ["s2"]
    assert harness.store.loads == 1


def test_a_failed_append_evicts_the_goal_and_the_next_trigger_reads_it_back() -> None:
    harness = PlannerHarness(ORDERED)
    harness.accept()
    harness.store.fail_next_append = LeaseLostError("another replica took over")

    with pytest.raises(LeaseLostError):
        harness.completed("s1", "391")
    assert GOAL not in harness.planner.states
    # The input comes back (nak): now it is decided on the goal's record.
    completed = next(e for e in harness.log if getattr(e, "task_id", None) == "s1")
    events = harness.receive(completed, first_delivery=False)

    assert [e.task_id for e in events if isinstance(e, TaskScheduled)] == ["s2"]
    assert harness.store.loads == 1


def test_a_finished_goal_leaves_a_tombstone_so_late_events_read_nothing() -> None:
    harness = PlannerHarness(ORDERED)
    harness.accept()
    harness.completed("s1", "391")
    harness.completed("s2", "the answer is 391")
    harness.evaluated("accept")
    assert any(isinstance(e, GoalCompleted) for e in harness.log)
    assert len(harness.planner.states) == 0  # no state kept for it

    assert harness.completed("s2", "late") == []
    assert harness.store.loads == 0


def test_a_resent_command_admits_nothing() -> None:
    harness = PlannerHarness(ORDERED)

    body = msgspec.json.encode({"command_id": "c-1", "goal_id": GOAL, **ORDERED})
    outcome = run_now(harness.intake.admit(body, fallback_command_id="x"))

    assert outcome.existed
    assert outcome.appended == ()
    assert len(harness.log) == 1
