"""The planner's plan -> run -> evaluate loop. Pure.

Intake (``accept_goal``) lives in ``services.planner.intake``.

``decide`` is level-triggered: it is called with the state that already includes the
triggering event and emits whatever is due and not yet done, in this order: ask for context,
plan once context arrived, schedule every task whose dependencies completed, request an
evaluation once every task is completed/failed/skipped, and act on the verdict. Every event's
id comes from the logical identity of the decision (``("task", iteration, task_id)`` and so
on), so a redelivered or repeated trigger reproduces the same ids and JetStream drops the
copies. ``goal_accepted`` and every tracked event of the current iteration are triggers,
including the planner's own outputs when they come back from the stream: after a crash
between two publishes, the next of them to arrive completes the work (with write-through
they decide nothing new). Events of older iterations trigger nothing.

Task arguments may refer to earlier outputs as ``{{steps.<id>.output}}``; see
``services.planner.references``. ``task_scheduled.args`` always carry the resolved values.
"""

from __future__ import annotations

from datetime import datetime

from msgspec.structs import replace as replace_struct

from events.catalog import (
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCompleted,
    GoalFailed,
    PlanCreated,
    PlanRevised,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from events.model import Event, Stamp, TaskSpec
from services.planner.decompose import decompose_text
from services.planner.intake import Tools, context_request
from services.planner.references import (
    resolve_references,
)
from services.planner.state import (
    PlannerState,
    evolve,
    is_finished,
    iteration_outcomes,
    iteration_result,
    ready_tasks,
)

__all__ = ["MAX_REVISED_TIMEOUT_S", "decide", "revise_tasks"]

# The largest timeout an intake step may ask for; revisions never grow a timeout beyond it.
MAX_REVISED_TIMEOUT_S = 3600.0


# -- the plan -> run -> evaluate loop ----------------------------------------------------

_ITERATION_EVENTS = (
    ContextRequested,
    ContextProvided,
    PlanCreated,
    PlanRevised,
    TaskScheduled,
    TaskCompleted,
    TaskFailed,
    EvaluationRequested,
    EvaluationCompleted,
)


def decide(
    state: PlannerState | None,
    event: Event,
    *,
    tools: Tools,
    now: datetime,
    producer: str,
) -> list[Event]:
    """What is due for the goal after ``event`` (already folded into ``state``)."""
    if state is None or is_finished(state) or not _is_trigger(state, event):
        return []
    stamp = Stamp.caused_by(event, producer=producer, now=now)
    decided: list[Event] = []
    while batch := _next_decisions(state, stamp, tools):
        decided += batch
        after = _apply(state, batch)
        if after == state:  # a decision the fold ignores would otherwise repeat forever
            break
        state = after
    return decided


def _is_trigger(state: PlannerState, event: Event) -> bool:
    if isinstance(event, GoalAccepted):
        return True
    # Events of older iterations are history: their consequences were decided back then.
    return isinstance(event, _ITERATION_EVENTS) and event.iteration == state.iteration


def _apply(state: PlannerState, events: list[Event]) -> PlannerState:
    for event in events:
        folded = evolve(state, event)
        assert folded is not None  # folding never forgets a goal it knows
        state = folded
    return state


def _next_decisions(state: PlannerState, stamp: Stamp, tools: Tools) -> list[Event]:
    """The next batch of decisions due in ``state``; [] when there is nothing to do."""
    goal = state.goal
    if goal is None or state.outcome is not None:
        return []
    if state.plan is None:
        return _before_the_plan(state, stamp, goal, tools)
    if state.evaluation is not None:
        return [_act_on_verdict(state, stamp, state.evaluation)]
    ready = ready_tasks(state)
    if ready:
        return [_schedule(state, stamp, task) for task in ready]
    if state.all_tasks_done and not state.evaluation_requested:
        return [_evaluation_request(state, stamp)]
    return []


def _before_the_plan(
    state: PlannerState, stamp: Stamp, goal: GoalAccepted, tools: Tools
) -> list[Event]:
    if not state.context_requested:
        return [context_request(stamp, goal)]
    if state.context_received:
        return [_first_plan(state, stamp, goal, tools)]
    return []


def _first_plan(state: PlannerState, stamp: Stamp, goal: GoalAccepted, tools: Tools) -> PlanCreated:
    if goal.steps:
        strategy, tasks = "explicit", goal.steps
    else:
        strategy, tasks = "decomposed", _with_tool_timeouts(decompose_text(goal.text), tools)
    return PlanCreated(
        **stamp.envelope("plan_created", "plan", state.iteration),
        iteration=state.iteration,
        strategy=strategy,
        tasks=tasks,
    )


def _with_tool_timeouts(tasks: tuple[TaskSpec, ...], tools: Tools) -> tuple[TaskSpec, ...]:
    """Give decomposed tasks at least their tool's default timeout, as explicit steps get."""
    return tuple(
        replace_struct(task, timeout_s=max(task.timeout_s, tools[task.tool].default_timeout_s))
        if task.tool in tools
        else task
        for task in tasks
    )


def _schedule(state: PlannerState, stamp: Stamp, task: TaskSpec) -> TaskScheduled:
    outputs = {
        task_id: progress.output
        for task_id, progress in state.progress.items()
        if progress.status == "completed"
    }
    return TaskScheduled(
        **stamp.envelope("task_scheduled", "task", state.iteration, task.task_id),
        iteration=state.iteration,
        task_id=task.task_id,
        description=task.description,
        tool=task.tool,
        args=resolve_references(task.args, outputs),
        timeout_s=task.timeout_s,
        max_attempts=task.max_attempts,
    )


def _evaluation_request(state: PlannerState, stamp: Stamp) -> EvaluationRequested:
    return EvaluationRequested(
        **stamp.envelope("evaluation_requested", "evaluation", state.iteration),
        iteration=state.iteration,
        text=state.text,
        expect=state.expect,
        result=iteration_result(state),
        tasks=iteration_outcomes(state),
    )


def _act_on_verdict(
    state: PlannerState, stamp: Stamp, evaluation: EvaluationCompleted
) -> GoalCompleted | GoalFailed | PlanRevised:
    if evaluation.verdict == "accept":
        return GoalCompleted(
            **stamp.envelope("goal_completed", "outcome"),
            result=iteration_result(state),
            iterations=state.iteration,
            score=evaluation.score,
        )
    if state.iteration >= state.max_iterations:
        return GoalFailed(
            **stamp.envelope("goal_failed", "outcome"),
            reason=(
                f"evaluation did not pass after {state.iteration} iterations: {evaluation.feedback}"
            ),
            iterations=state.iteration,
            score=evaluation.score,
        )
    next_iteration = state.iteration + 1
    return PlanRevised(
        **stamp.envelope("plan_revised", "plan", next_iteration),
        iteration=next_iteration,
        strategy="revised",
        tasks=revise_tasks(state),
        feedback=evaluation.feedback,
    )


def revise_tasks(state: PlannerState) -> tuple[TaskSpec, ...]:
    """The rule-based revision strategy: run the same plan again, with more room to succeed.

    The tasks, their arguments and their dependencies stay as they were. Every task that
    failed in the iteration being revised gets twice its timeout (at most
    ``MAX_REVISED_TIMEOUT_S``) and one more attempt, so a task that timed out or hit a
    transient error has a bigger budget next time. Skipped tasks run unchanged once their
    dependencies succeed.
    """
    return tuple(
        replace_struct(
            task,
            timeout_s=min(task.timeout_s * 2, max(task.timeout_s, MAX_REVISED_TIMEOUT_S)),
            max_attempts=task.max_attempts + 1,
        )
        if state.status_of(task.task_id) == "failed"
        else task
        for task in state.plan or ()
    )
