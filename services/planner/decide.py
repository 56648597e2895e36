"""The planner's decisions: intake of goal commands and the plan -> run -> evaluate loop. Pure.

``accept_goal`` turns a parsed intake command into ``goal_accepted`` + ``context_requested``
or a ``goal_rejected`` with a reason that says what to fix.

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

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from msgspec.structs import replace as replace_struct
from pydantic import ValidationError

from events.catalog import (
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCompleted,
    GoalFailed,
    GoalRejected,
    PlanCreated,
    PlanRevised,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from events.commands import ParsedGoal, RejectedGoal, StepCommand
from events.model import Event, Stamp, TaskSpec
from events.tools import ToolSpec
from services.planner.decompose import decompose_text
from services.planner.references import (
    contains_reference_marker,
    referenced_step_ids,
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

__all__ = [
    "CONTEXT_K",
    "DEFAULT_MAX_ATTEMPTS",
    "MAX_REVISED_TIMEOUT_S",
    "accept_goal",
    "decide",
    "normalize_steps",
    "revise_tasks",
    "step_problems",
]

CONTEXT_K = 5
DEFAULT_MAX_ATTEMPTS = 3
# The largest timeout an intake step may ask for; revisions never grow a timeout beyond it.
MAX_REVISED_TIMEOUT_S = 3600.0
_REJECTED_TEXT_LIMIT = 500
_DESCRIPTION_LIMIT = 200
_MAX_PROBLEMS_REPORTED = 10

Tools = Mapping[str, ToolSpec]


# -- intake ------------------------------------------------------------------------------


def accept_goal(
    parsed: ParsedGoal | RejectedGoal,
    existing: PlannerState | None,
    *,
    tools: Tools,
    now: datetime,
    producer: str,
) -> list[Event]:
    """Admit a goal command into the log, or reject it with a reason saying what to fix.

    A command for a goal id that already exists changes nothing: it is a resend, and a goal
    that exists must never be disturbed by a later command.
    """
    if existing is not None:
        return []
    stamp = Stamp(
        producer=producer,
        goal_id=parsed.goal_id,
        occurred_at=now,
        causation_id=None,
        correlation_id=parsed.goal_id,
    )
    if isinstance(parsed, RejectedGoal):
        return [_rejection(stamp, parsed.command_id, parsed.reason, parsed.text)]
    command = parsed.command
    steps = None
    if command.steps:
        problems = step_problems(command.steps, tools)
        if problems:
            reason = "invalid steps: " + "; ".join(problems[:_MAX_PROBLEMS_REPORTED])
            if len(problems) > _MAX_PROBLEMS_REPORTED:
                reason += f"; and {len(problems) - _MAX_PROBLEMS_REPORTED} more"
            return [_rejection(stamp, parsed.command_id, reason, command.text)]
        steps = normalize_steps(command.steps, tools)
    accepted = GoalAccepted(
        **stamp.envelope("goal_accepted", "accepted"),
        command_id=parsed.command_id,
        text=command.text,
        steps=steps,
        expect=command.expect,
        max_iterations=command.max_iterations,
        metadata=command.metadata,
    )
    context = _context_request(Stamp.caused_by(accepted, producer=producer, now=now), accepted)
    return [accepted, context]


def _rejection(stamp: Stamp, command_id: str, reason: str, text: str) -> GoalRejected:
    return GoalRejected(
        **stamp.envelope("goal_rejected", "goal_rejected", command_id),
        command_id=command_id,
        reason=reason,
        text=text[:_REJECTED_TEXT_LIMIT],
    )


def _context_request(stamp: Stamp, goal: GoalAccepted) -> ContextRequested:
    # Context is gathered once, for the first plan; a revision keeps the plan's tasks.
    return ContextRequested(
        **stamp.envelope("context_requested", "context", 1),
        iteration=1,
        query=goal.text,
        k=CONTEXT_K,
    )


def _is_dag(steps: tuple[StepCommand, ...]) -> bool:
    return any(step.id is not None or step.depends_on is not None for step in steps)


def _step_ids(steps: tuple[StepCommand, ...]) -> list[str]:
    # A step without an id is named after its position, so "{{steps.s2.output}}" works
    # for plain ordered steps too.
    return [step.id or f"s{position}" for position, step in enumerate(steps, start=1)]


def _dependencies(steps: tuple[StepCommand, ...]) -> list[tuple[str, ...]]:
    ids = _step_ids(steps)
    if not _is_dag(steps):
        return [(ids[index - 1],) if index > 0 else () for index in range(len(steps))]
    return [tuple(dict.fromkeys(step.depends_on or ())) for step in steps]


def step_problems(steps: tuple[StepCommand, ...], tools: Tools) -> list[str]:
    """Everything wrong with explicit steps, each phrased as what to fix. Empty when valid."""
    ids = _step_ids(steps)
    dependencies = _dependencies(steps)
    problems: list[str] = []
    problems += _duplicate_id_problems(steps, ids)
    for step_id, step in zip(ids, steps, strict=True):
        problems += _tool_problems(step_id, step, tools)
    known = set(ids)
    for step_id, deps in zip(ids, dependencies, strict=True):
        problems += [
            f"step {step_id} depends on unknown step {dep!r}; known steps: {', '.join(ids)}"
            for dep in deps
            if dep not in known
        ]
    if problems:
        return problems
    graph = dict(zip(ids, dependencies, strict=True))
    cycle = _cycle_in(graph)
    if cycle:
        return [f"steps form a cycle ({' -> '.join(cycle)}); remove one of these depends_on"]
    for step_id, step in zip(ids, steps, strict=True):
        problems += _reference_problems(step_id, step, graph)
    return problems


def _duplicate_id_problems(steps: tuple[StepCommand, ...], ids: list[str]) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for position, (step_id, step) in enumerate(zip(ids, steps, strict=True), start=1):
        if step_id in seen:
            named = "" if step.id is not None else " (the name given to a step without an id)"
            problems.append(
                f"step {position} uses id {step_id!r}{named}, already used by step "
                f"{seen[step_id]}; give every step a unique id"
            )
        seen.setdefault(step_id, position)
    return problems


def _tool_problems(step_id: str, step: StepCommand, tools: Tools) -> list[str]:
    spec = tools.get(step.tool)
    if spec is None:
        known = ", ".join(sorted(tools))
        return [f"step {step_id} uses unknown tool {step.tool!r}; known tools: {known}"]
    prefix = f"step {step_id} ({step.tool})"
    if contains_reference_marker(step.args):
        # Values become known only at scheduling time; the names must already be right.
        fields = spec.args.model_fields
        unknown = sorted(set(step.args) - set(fields))
        missing = sorted(
            name for name, info in fields.items() if info.is_required() and name not in step.args
        )
        problems = [f"{prefix}: unknown argument {name!r}" for name in unknown]
        problems += [f"{prefix}: missing argument {name!r}" for name in missing]
        if problems:
            problems[-1] += f"; expected arguments: {', '.join(fields)}"
        return problems
    try:
        spec.args.model_validate(step.args)
    except ValidationError as exc:
        return [
            f"{prefix}: argument {'.'.join(map(str, error['loc'])) or '(all)'}: {error['msg']}"
            for error in exc.errors()
        ]
    return []


def _cycle_in(graph: Mapping[str, tuple[str, ...]]) -> list[str]:
    """One dependency cycle as a path that returns to its start, or [] when there is none."""
    finished: set[str] = set()
    for start in graph:
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, next_dep = stack.pop()
            if next_dep == 0:
                if node in finished:
                    continue
                if node in on_path:
                    return [*path[path.index(node) :], node]
                path.append(node)
                on_path.add(node)
            deps = graph[node]
            if next_dep < len(deps):
                stack.append((node, next_dep + 1))
                stack.append((deps[next_dep], 0))
            else:
                path.pop()
                on_path.discard(node)
                finished.add(node)
    return []


def _ancestors(step_id: str, graph: Mapping[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    pending = list(graph[step_id])
    while pending:
        dep = pending.pop()
        if dep not in seen:
            seen.add(dep)
            pending.extend(graph[dep])
    return seen


def _reference_problems(
    step_id: str, step: StepCommand, graph: Mapping[str, tuple[str, ...]]
) -> list[str]:
    problems: list[str] = []
    ancestors = _ancestors(step_id, graph)
    for ref in referenced_step_ids(step.args):
        if ref not in graph:
            problems.append(
                f"step {step_id} refers to the output of unknown step {ref!r}; "
                f"known steps: {', '.join(graph)}"
            )
        elif ref not in ancestors:
            problems.append(
                f"step {step_id} refers to the output of step {ref!r} but does not depend "
                f"on it; add {ref!r} to its depends_on"
            )
    return problems


def normalize_steps(steps: tuple[StepCommand, ...], tools: Tools) -> tuple[TaskSpec, ...]:
    """Valid explicit steps (see ``step_problems``) as the plan's tasks."""
    return tuple(
        TaskSpec(
            task_id=step_id,
            description=step.description or _describe(step.tool, step.args),
            tool=step.tool,
            args=dict(step.args),
            depends_on=deps,
            timeout_s=step.timeout_s or tools[step.tool].default_timeout_s,
            max_attempts=DEFAULT_MAX_ATTEMPTS,
        )
        for step_id, step, deps in zip(_step_ids(steps), steps, _dependencies(steps), strict=True)
    )


def _describe(tool: str, args: Mapping[str, Any]) -> str:
    text = " ".join([tool, *(str(value) for value in args.values())])
    text = " ".join(text.split())
    return text if len(text) <= _DESCRIPTION_LIMIT else text[: _DESCRIPTION_LIMIT - 1] + "…"


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
        return [_context_request(stamp, goal)]
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
