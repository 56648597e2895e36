"""The planner's own handler with a flow gate, over in-memory ports: given goals -> when they
are accepted and end -> then what is queued, dequeued and planned, and a re-run of a goal that
waited reports no difference."""

from __future__ import annotations

from datetime import UTC, datetime

from events.catalog import (
    EvaluationCompleted,
    GoalAccepted,
    GoalCompleted,
    GoalDequeued,
    GoalQueued,
    PlanCreated,
    TaskCompleted,
    TaskScheduled,
)
from events.errors import LeaseLostError
from events.flow import parse_flow_policy
from events.model import Event, Stamp
from services.planner.flow import FlowLedger
from services.planner.flow_gate import FlowGate
from services.planner.handler import GoalIntake, GoalPlanner
from services.rerun import RerunOptions, rerun_planner
from tests.unit.planner_harness import NOW, PRODUCER, InMemoryLog, admitted, handler_pair, run_now


def _platform(policy: str) -> tuple[InMemoryLog, GoalIntake, GoalPlanner]:
    log = InMemoryLog()
    intake, planner = handler_pair(log)
    planner.flow = FlowGate(
        FlowLedger(parse_flow_policy(policy)), log.append, PRODUCER, lambda: NOW
    )
    return log, intake, planner


def _deliver(log: InMemoryLog, planner: GoalPlanner, event: Event) -> list[Event]:
    """``event`` stored (if new) and delivered to the planner: what it appended."""
    log.store([event])
    before = len(log.events)
    run_now(planner.handle(event, first_delivery=True))
    return log.events[before:]


def _finish(log: InMemoryLog, planner: GoalPlanner, goal_id: str) -> list[Event]:
    """The goal's one task completes and is accepted: what the planner appended."""
    stamp = Stamp(
        producer="executor@0.1.0",
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id=None,
        correlation_id=goal_id,
    )
    done = TaskCompleted(
        **stamp.envelope("task_completed", 1, "s1"),
        iteration=1,
        task_id="s1",
        tool="echo",
        output="x",
        attempts=1,
        duration_ms=1.0,
    )
    _deliver(log, planner, done)
    verdict = EvaluationCompleted(
        **stamp.envelope("evaluation_completed", 1),
        request_id="r",
        iteration=1,
        verdict="accept",
        score=1.0,
        feedback="ok",
    )
    return _deliver(log, planner, verdict)


def _submit(intake: GoalIntake, goal_id: str, **extra: object) -> GoalAccepted:
    body = {"goal_id": goal_id, "command_id": f"c-{goal_id}", "text": goal_id, **extra}
    body["steps"] = [{"tool": "echo", "args": {"text": goal_id}}]
    accepted = admitted(intake, body)
    assert isinstance(accepted, GoalAccepted)
    return accepted


def test_a_goal_past_the_limit_waits_unplanned_and_is_planned_when_a_slot_frees() -> None:
    log, intake, planner = _platform('{"limits": [{"key": "tenant", "concurrency": 1}]}')
    first = _submit(intake, "g-1", metadata={"tenant": "a"})
    second = _submit(intake, "g-2", metadata={"tenant": "a"}, priority=3)
    other = _submit(intake, "g-3", metadata={"tenant": "b"})

    started = _deliver(log, planner, first)
    assert [type(e) for e in started] == [GoalDequeued, PlanCreated, TaskScheduled]
    waited = _deliver(log, planner, second)
    assert [type(e) for e in waited] == [GoalQueued]
    assert isinstance(waited[0], GoalQueued)
    assert waited[0].reason == "tenant=a: 1 of 1 running"
    assert waited[0].priority == 3
    # Another tenant's goal is not held back.
    assert isinstance(_deliver(log, planner, other)[0], GoalDequeued)

    ended = _finish(log, planner, "g-1")
    assert [type(e) for e in ended][-2:] == [GoalCompleted, GoalDequeued]
    dequeued = ended[-1]
    assert dequeued.goal_id == "g-2"
    assert dequeued.causation_id == ended[-2].event_id  # the outcome that freed the slot
    # Delivered back to the planner, the waiting goal is planned in its own lane.
    planned = _deliver(log, planner, dequeued)
    assert [type(e) for e in planned] == [PlanCreated, TaskScheduled]
    # Delivered again (a redelivery), it decides nothing twice.
    again = len(log.events)
    run_now(planner.handle(dequeued, first_delivery=False))
    assert len(log.events) == again


async def test_a_goal_that_waited_reruns_identically() -> None:
    log, intake, planner = _platform('{"limits": [{"key": "*", "concurrency": 1}]}')
    first = _submit(intake, "g-1")
    second = _submit(intake, "g-2")
    _deliver(log, planner, first)
    _deliver(log, planner, second)
    dequeued = _finish(log, planner, "g-1")[-1]
    _deliver(log, planner, dequeued)
    _finish(log, planner, "g-2")
    history = [e for e in log.events if e.goal_id == "g-2"]
    assert any(isinstance(e, GoalQueued) for e in history)

    report = await rerun_planner(
        history, RerunOptions(planning=None), datetime(2027, 1, 1, tzinfo=UTC)
    )
    assert report.identical, report.differences


def _completed(goal_id: str) -> GoalCompleted:
    stamp = Stamp(
        producer=PRODUCER,
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id=None,
        correlation_id=goal_id,
    )
    return GoalCompleted(
        **stamp.envelope("goal_completed", "outcome"), result="", iterations=1, score=1.0
    )


async def test_a_start_that_cannot_be_written_is_undone_and_tried_again() -> None:
    log, intake, planner = _platform('{"limits": [{"key": "*", "concurrency": 1}]}')
    gate = planner.flow
    assert gate is not None
    first = _submit(intake, "g-1")
    second = _submit(intake, "g-2")
    _deliver(log, planner, first)
    _deliver(log, planner, second)
    log.fail_next_append = ConnectionError("the server went away")
    gate.finished("g-1", _completed("g-1"))
    await gate.flush()  # the start of g-2 fails to be written
    assert not any(isinstance(e, GoalDequeued) and e.goal_id == "g-2" for e in log.events)
    assert gate.ledger.waiting() == 1  # g-2 waits again, in its place
    assert gate.armed  # the retry, a second later
    await gate.wake()
    assert any(isinstance(e, GoalDequeued) and e.goal_id == "g-2" for e in log.events)
    gate.stop()


async def test_a_gate_that_lost_the_lease_undoes_its_start_and_wakes_no_more() -> None:
    log, intake, planner = _platform('{"limits": [{"key": "*", "concurrency": 1}]}')
    gate = planner.flow
    assert gate is not None
    _deliver(log, planner, _submit(intake, "g-1"))
    _deliver(log, planner, _submit(intake, "g-2"))
    log.fail_next_append = LeaseLostError("another replica holds the lease")
    gate.finished("g-1", _completed("g-1"))
    await gate.flush()
    assert gate.ledger.waiting() == 1
    assert not gate.armed  # no retry: the next active replica rebuilds from the log
