"""A call recorded by its outcome alone is shown exactly as one recorded before it ran.

``llm-goal.json`` was written when every plain call wrote ``tool_called`` first. Rewritten as
the executor writes it now for instant tools without side effects (no ``tool_called``; its
``task_completed`` carries ``called_at``), every reader that shows calls must show the same:
the timeline, the trace's spans, the AG-UI run, and the fault checker's accounting.
"""

from __future__ import annotations

import msgspec

from events.calls import implied_call
from events.catalog import TaskCompleted, TaskScheduled, ToolCalled, ToolFailed
from events.model import Event
from events.tools import BUILTIN_TOOLS, CallRecord
from infra.agui_server.mapping import map_run
from projections.spans import goal_spans
from projections.timeline import build_timeline
from tests.faults.checker import check_log, check_side_effects
from tests.unit.test_timeline import LLM_LOG

GOAL = "r-llm"


def _as_written_now(log: list[Event]) -> list[Event]:
    """``log`` without the tool_called of plain calls of tools that no longer record one: the
    call's outcome (``task_completed``, ``tool_failed``) carries ``called_at`` instead."""
    calls = {
        (e.iteration, e.task_id, e.attempt): e
        for e in log
        if isinstance(e, ToolCalled)
        and e.step == 0
        and BUILTIN_TOOLS[e.tool].call_record is CallRecord.BY_OUTCOME
    }
    rewritten: list[Event] = []
    for event in log:
        call = None
        if isinstance(event, TaskCompleted):
            call = calls.get((event.iteration, event.task_id, event.attempts))
        elif isinstance(event, ToolFailed):
            call = calls.get((event.iteration, event.task_id, event.attempt))
        if call is not None:
            rewritten.append(msgspec.structs.replace(event, called_at=call.occurred_at))
        elif not (isinstance(event, ToolCalled) and event in calls.values()):
            rewritten.append(event)
    return rewritten


def test_a_call_recorded_by_its_outcome_reads_as_the_tool_called_it_replaces() -> None:
    goal = [e for e in LLM_LOG if e.goal_id == GOAL]
    now = _as_written_now(goal)
    dropped = [e for e in goal if e not in now and isinstance(e, ToolCalled)]
    assert sorted(e.tool for e in dropped) == ["calculator", "echo"]  # the plain pure calls

    scheduled = {(e.iteration, e.task_id): e for e in goal if isinstance(e, TaskScheduled)}
    for call in dropped:
        [outcome] = [e for e in now if isinstance(e, TaskCompleted) and e.task_id == call.task_id]
        assert implied_call(outcome, scheduled[(call.iteration, call.task_id)]) == call

    assert build_timeline(GOAL, now) == build_timeline(GOAL, goal)
    assert goal_spans(GOAL, now, content=True) == goal_spans(GOAL, goal, content=True)
    assert map_run("t", "r", GOAL, now) == map_run("t", "r", GOAL, goal)
    # The checker counts each call once, with its one result (it does not follow ReAct
    # steps' calls, which the fault workloads do not run: those problems are the same).
    verdict = check_log("now", [GOAL], now, len(now))
    assert verdict.problems == check_log("then", [GOAL], goal, len(goal)).problems
    check_side_effects(verdict, now, {(GOAL, "s1"): 1, (GOAL, "s2"): 1})
    assert verdict.counts["side_effect_attempts"] == 2  # one call each, counted from outcomes
    assert not [p for p in verdict.problems if "s1" in p or "s2" in p]
