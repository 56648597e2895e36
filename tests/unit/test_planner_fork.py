"""Forks: given an old goal's events up to N -> when a fork command arrives -> then a new goal
that carries the old plan and completed outputs, or a readable rejection."""

from __future__ import annotations

from typing import Any

import msgspec

from events.catalog import (
    ContextProvided,
    EvaluationRequested,
    GoalAccepted,
    GoalRejected,
    PlanCreated,
    TaskScheduled,
)
from events.commands import parse_goal_command
from events.model import Event, ForkPoint, Stamp
from events.tools import BUILTIN_TOOLS
from services.planner.decide import decide
from services.planner.intake import accept_goal
from services.planner.state import PlannerState, evolve
from tests.unit.test_planner_loop import NOW, PRODUCER, PlannerHarness

STEPS = {
    "text": "three steps",
    "steps": [
        {"tool": "calculator", "args": {"expression": "2+3"}},
        {"tool": "echo", "args": {"text": "got {{steps.s1.output}}"}},
        {"tool": "echo", "args": {"text": "then {{steps.s2.output}}"}},
    ],
    "expect": {"contains": "then"},
}


def origin_until_first_completion() -> list[Event]:
    h = PlannerHarness(STEPS)
    h.context_provided()
    h.completed("s1", "5")
    return h.log


def fork_command(**fields: Any) -> bytes:
    body = {"command_id": "f-1", "goal_id": "g-fork", "text": "three steps, again", **fields}
    return msgspec.json.encode(body)


def accept(data: bytes, origin: list[Event]) -> list[Event]:
    parsed = parse_goal_command(data, fallback_command_id="x", max_bytes=100_000)
    return accept_goal(parsed, None, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER, origin=origin)


def test_a_fork_carries_the_plan_and_completed_outputs_and_runs_the_rest() -> None:
    origin = origin_until_first_completion()
    outputs = accept(fork_command(forked_from={"goal_id": "g-loop", "at_seq": 9}), origin)

    accepted = outputs[0]
    assert isinstance(accepted, GoalAccepted)
    assert accepted.goal_id == "g-fork"
    assert accepted.text == "three steps, again"
    assert accepted.forked_from == ForkPoint(goal_id="g-loop", at_seq=9)
    assert [t.task_id for t in accepted.steps or ()] == ["s1", "s2", "s3"]
    assert [(c.task_id, c.output) for c in accepted.carried] == [("s1", "5")]
    assert accepted.expect is not None  # the old goal's, the fork gave none
    assert accepted.expect.contains == "then"

    # Run the fork's planner loop: s1 is not run again, s2 gets s1's carried output.
    state: PlannerState | None = None
    for event in outputs:
        state = evolve(state, event)
    context = _context_for(outputs)
    state = evolve(state, context)
    decided = decide(state, context, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER)
    plan = next(e for e in decided if isinstance(e, PlanCreated))
    assert plan.strategy == "forked"
    scheduled = [e for e in decided if isinstance(e, TaskScheduled)]
    assert [(t.task_id, t.args) for t in scheduled] == [("s2", {"text": "got 5"})]


def test_a_fork_of_a_finished_plan_goes_straight_to_evaluation() -> None:
    h = PlannerHarness(STEPS)
    h.context_provided()
    h.completed("s1", "5")
    h.completed("s2", "got 5")
    h.completed("s3", "then got 5")
    outputs = accept(fork_command(forked_from={"goal_id": "g-loop", "at_seq": 99}), h.log)
    state: PlannerState | None = None
    for event in outputs:
        state = evolve(state, event)
    context = _context_for(outputs)
    state = evolve(state, context)
    decided = decide(state, context, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER)
    assert [type(e) for e in decided] == [PlanCreated, EvaluationRequested]
    evaluation = decided[-1]
    assert isinstance(evaluation, EvaluationRequested)
    assert evaluation.result == "then got 5"


def test_a_fork_before_the_plan_plans_anew_from_its_text() -> None:
    h = PlannerHarness(STEPS)
    outputs = accept(fork_command(forked_from={"goal_id": "g-loop", "at_seq": 2}), h.log)
    accepted = outputs[0]
    assert isinstance(accepted, GoalAccepted)
    assert accepted.steps is None
    assert accepted.carried == ()


def test_forking_nothing_or_a_rejected_goal_is_rejected_readably() -> None:
    [rejected] = accept(fork_command(forked_from={"goal_id": "nope", "at_seq": 5}), [])
    assert isinstance(rejected, GoalRejected)
    assert "cannot fork goal nope" in rejected.reason
    assert "agora trajectory nope" in rejected.reason

    with_steps = fork_command(
        forked_from={"goal_id": "g-loop", "at_seq": 9}, steps=[{"tool": "echo"}]
    )
    [rejected] = accept(with_steps, origin_until_first_completion())
    assert isinstance(rejected, GoalRejected)
    assert "drop steps" in rejected.reason


def _context_for(outputs: list[Event]) -> Event:
    stamp = Stamp.caused_by(outputs[-1], producer="memory@0.1.0", now=NOW)
    return ContextProvided(**stamp.envelope("context_provided", 1), request_id="r", iteration=1)
