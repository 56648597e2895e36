"""What a goal's page shows, folded from its events: pure, events in, a picture out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from events.catalog import ContextProvided, PlanCreated, PlanRevised
from events.model import Event, MemoryItem, TaskSpec
from projections.timeline import Timeline, build_timeline

__all__ = ["GoalPicture", "picture_of"]


@dataclass(frozen=True, slots=True)
class GoalPicture:
    timeline: Timeline | None
    plan: tuple[TaskSpec, ...]  # the latest plan (created or revised)
    plan_iteration: int
    task_statuses: dict[str, str]  # of the latest plan's tasks, by task id
    context: tuple[MemoryItem, ...]  # what memory recalled for the goal, latest answer first
    events: int


def picture_of(goal_id: str, events: Iterable[Event]) -> GoalPicture:
    kept = [event for event in events if event.goal_id == goal_id]
    plan: PlanCreated | PlanRevised | None = None
    recalled: list[MemoryItem] = []
    for event in kept:
        if isinstance(event, PlanCreated | PlanRevised):
            plan = event
        elif isinstance(event, ContextProvided):
            recalled[:0] = event.items
    timeline = build_timeline(goal_id, kept)
    iteration = plan.iteration if plan is not None else 0
    statuses: dict[str, str] = {}
    for bar in timeline.bars if timeline is not None else ():
        if bar.kind == "task" and bar.facts.get("iteration") == iteration:
            statuses[str(bar.facts.get("task_id", ""))] = bar.status
    return GoalPicture(
        timeline=timeline,
        plan=plan.tasks if plan is not None else (),
        plan_iteration=iteration,
        task_statuses=statuses,
        context=tuple(recalled),
        events=len(kept),
    )
