"""The planner's plan -> run -> evaluate loop. Pure.

Intake (``accept_goal``) lives in ``services.planner.intake``.

``decide`` is level-triggered: it is called with the state that already includes the
triggering event and emits whatever is due and not yet done, in this order: plan (when a model
plans, first ask memory for context and plan once it arrived), schedule every task whose
dependencies completed, request an evaluation once every task is completed/failed/skipped,
and act on the verdict. Every event's id comes from the logical identity of the decision
(``("task", iteration, task_id)`` and so on), so a redelivered or repeated trigger reproduces
the same ids and JetStream drops the copies. ``goal_accepted`` and every tracked event of the
current iteration are triggers; events of older iterations trigger nothing.

Task arguments may refer to earlier outputs as ``{{steps.<id>.output}}``; see
``services.planner.references``. ``task_scheduled.args`` always carry the resolved values.

With an LLM configured (``planning`` set) a goal without explicit steps is planned and revised
by the model (``services.planner.llm_plan``). Deciding stays pure: :func:`decide_next` returns
the decisions it could make plus, when the next one needs a model's answer that is not yet
recorded, the request to ask (``Decision.llm_request``). The adapter asks it through
``recorded_call``, folds the ``llm_responded`` and decides again. Every ``llm_responded`` of the
goal is a trigger too: it is how the goal's budget is enforced (``services.planner.budget``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from msgspec.structs import replace as replace_struct

from events.catalog import (
    ApprovalAnswered,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCompleted,
    GoalDequeued,
    GoalFailed,
    GoalResumed,
    IterationInterrupted,
    LlmResponded,
    MessageReceived,
    PlanCreated,
    PlanRevised,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from events.model import Event, Stamp, TaskSpec
from services.llm.messages import LlmRequest
from services.planner.approvals import ask_or_schedule, decide_answer, react_policy
from services.planner.budget import exceeded_reason, no_room_reason, remaining
from services.planner.control import CONTROL_REQUESTS, decide_control
from services.planner.decompose import decompose_text
from services.planner.intake import Tools, context_request
from services.planner.llm_plan import (
    LlmPlanning,
    NeedAnswer,
    PlanFailed,
    Planned,
    llm_plan,
    visible_tools,
)
from services.planner.messages import decide_message
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

__all__ = [
    "COMMAND_RECORDS",
    "LLM_UNAVAILABLE",
    "MAX_REVISED_TIMEOUT_S",
    "Decision",
    "decide",
    "decide_next",
    "llm_failure",
    "permanent_failures",
    "revise_tasks",
    "unwritable_failure",
]

# The reason prefix of a goal that failed because the model could not answer.
LLM_UNAVAILABLE = "llm_unavailable"

# The largest timeout an intake step may ask for; revisions never grow a timeout beyond it.
MAX_REVISED_TIMEOUT_S = 3600.0


# The recorded commands the active planner answers, even for a goal that ended or never was.
COMMAND_RECORDS = (*CONTROL_REQUESTS, ApprovalAnswered, MessageReceived)

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


@dataclass(frozen=True, slots=True)
class Decision:
    """What is due: ``events`` to publish, then (if set) a model's answer to ask for.

    ``state``: the state decided from with ``events`` folded in, when deciding folded them
    all anyway (None: not folded). The adapter keeps it instead of folding them once more.
    """

    events: list[Event] = field(default_factory=list)
    llm_request: LlmRequest | None = None
    state: PlannerState | None = None


def decide(
    state: PlannerState | None,
    event: Event,
    *,
    tools: Tools,
    now: datetime,
    producer: str,
) -> list[Event]:
    """What is due for the goal after ``event`` (already folded into ``state``), rule-based."""
    return decide_next(state, event, tools=tools, now=now, producer=producer).events


def decide_next(
    state: PlannerState | None,
    event: Event,
    *,
    tools: Tools,
    now: datetime,
    producer: str,
    planning: LlmPlanning | None = None,
) -> Decision:
    """What is due for the goal after ``event``; ``planning`` switches the LLM strategy on.

    A steering request (cancel, pause, resume) is answered first (``services.planner.control``);
    a resume then goes on with whatever became due while the goal was paused. A paused goal
    folds what arrives (a running task's result, a verdict) but decides nothing else.
    """
    decided: list[Event] = []
    if isinstance(event, COMMAND_RECORDS):
        decided, state = _answer_command(state, event, tools=tools, now=now, producer=producer)
        if state is None:
            return Decision(decided)
    elif state is None or is_finished(state) or state.paused or not _is_trigger(state, event):
        return Decision()
    stamp = Stamp.caused_by(event, producer=producer, now=now)
    # Only an llm_responded spends, and deciding folds none: checking once per trigger is enough.
    exceeded = exceeded_reason(state)
    if exceeded is not None:
        return Decision([*decided, _failure(state, stamp, exceeded)])
    while batch := _next_decisions(state, stamp, tools, planning):
        if isinstance(batch, LlmRequest):
            return Decision(decided, batch, state)
        decided += batch
        after = _apply(state, batch)
        if after == state:  # a decision the fold ignores would otherwise repeat forever
            break
        state = after
        if isinstance(batch[0], TaskScheduled | ApprovalRequested):
            # The ready tasks, scheduled or waiting for approval, are the last decision due:
            # none is finished yet, so no other task became ready and the iteration is not done.
            break
    return Decision(decided, state=state)


def _answer_command(
    state: PlannerState | None,
    event: Event,
    *,
    tools: Tools,
    now: datetime,
    producer: str,
) -> tuple[list[Event], PlannerState | None]:
    """The answer to a steering request, an approval answer or a message, and the state to go
    on deciding from (None: nothing more is due). A resume goes on with what became due while
    the goal was paused; a granted or denied approval moves its waiting task on, and an
    interrupting message revises the plan, unless the goal is paused."""
    if isinstance(event, ApprovalAnswered):
        decided = decide_answer(state, event, tools=tools, now=now, producer=producer)
        goes_on = any(isinstance(e, ApprovalGranted | ApprovalDenied) for e in decided)
    elif isinstance(event, MessageReceived):
        decided = decide_message(state, event, now=now, producer=producer)
        goes_on = any(isinstance(e, IterationInterrupted) for e in decided)
    else:
        assert isinstance(event, CONTROL_REQUESTS)
        decided = decide_control(state, event, now=now, producer=producer)
        goes_on = any(isinstance(e, GoalResumed) for e in decided)
    if state is None or not goes_on:
        return decided, None
    after = _apply(state, decided)
    return decided, None if after.paused else after


def llm_failure(
    state: PlannerState | None, trigger: Event, error: str, *, now: datetime, producer: str
) -> list[Event]:
    """The goal fails cleanly when the model it waits for cannot answer (the chain gave up)."""
    if state is None or is_finished(state):
        return []
    stamp = Stamp.caused_by(trigger, producer=producer, now=now)
    return [_failure(state, stamp, f"{LLM_UNAVAILABLE}: {error}")]


def unwritable_failure(
    state: PlannerState | None, trigger: Event, error: str, *, now: datetime, producer: str
) -> list[Event]:
    """The goal fails with the reason when its next decision cannot be recorded (an event
    over the stream's size limit): retrying would fail the same way, for ever."""
    if state is None or is_finished(state):
        return []
    stamp = Stamp.caused_by(trigger, producer=producer, now=now)
    return [_failure(state, stamp, f"could not record the goal's next step: {error}")]


def _is_trigger(state: PlannerState, event: Event) -> bool:
    if isinstance(event, GoalAccepted | LlmResponded | GoalDequeued):
        return True
    # Events of older iterations are history: their consequences were decided back then.
    return isinstance(event, _ITERATION_EVENTS) and event.iteration == state.iteration


def _apply(state: PlannerState, events: list[Event]) -> PlannerState:
    for event in events:
        folded = evolve(state, event)
        assert folded is not None  # folding never forgets a goal it knows
        state = folded
    return state


def _next_decisions(
    state: PlannerState, stamp: Stamp, tools: Tools, planning: LlmPlanning | None
) -> list[Event] | LlmRequest:
    """The next batch of decisions due in ``state``; [] when there is nothing to do."""
    goal = state.goal
    if goal is None or state.outcome is not None or state.flow == "queued":
        return []  # a queued goal is planned once it leaves the queue (goal_dequeued)
    if state.plan is None:
        return _before_the_plan(state, stamp, goal, tools, planning)
    if state.evaluation is not None or state.interrupted:
        return _after_the_iteration(state, stamp, tools, planning)
    ready = ready_tasks(state)
    if ready:
        return [_schedule(state, stamp, task, tools) for task in ready]
    if state.all_tasks_done and not state.evaluation_requested:
        return [_evaluation_request(state, stamp)]
    return []


def _before_the_plan(
    state: PlannerState,
    stamp: Stamp,
    goal: GoalAccepted,
    tools: Tools,
    planning: LlmPlanning | None,
) -> list[Event] | LlmRequest:
    # Only a model plans from context: explicit steps and rule decomposition never read it,
    # so they are planned at once, without a round trip to memory.
    if goal.steps or planning is None or state.context_received:
        return _first_plan(state, stamp, goal, tools, planning)
    if not state.context_requested:
        return [context_request(stamp, goal)]
    return []


def _failure(state: PlannerState, stamp: Stamp, reason: str) -> GoalFailed:
    return GoalFailed(
        **stamp.envelope("goal_failed", "outcome"), reason=reason, iterations=state.iteration
    )


def _llm_tasks(
    state: PlannerState, stamp: Stamp, step: Planned | NeedAnswer | PlanFailed
) -> tuple[TaskSpec, ...] | list[Event] | LlmRequest:
    """The model's plan; else the goal's failure, or the request to ask (if the budget allows)."""
    match step:
        case Planned(tasks=tasks):
            return tasks
        case PlanFailed(reason=reason):
            return [_failure(state, stamp, reason)]
        case NeedAnswer(request=request):
            budget = state.budget
            capped = budget is not None and budget.max_tokens is not None
            no_room = no_room_reason(state, request.max_tokens if capped else None)
            return [_failure(state, stamp, no_room)] if no_room is not None else request


def _first_plan(
    state: PlannerState,
    stamp: Stamp,
    goal: GoalAccepted,
    tools: Tools,
    planning: LlmPlanning | None,
) -> list[Event] | LlmRequest:
    if goal.steps:
        strategy, tasks = ("forked" if goal.forked_from else "explicit"), goal.steps
    elif planning is not None:
        planned = _llm_tasks(state, stamp, llm_plan(state, tools=tools, planning=planning))
        if not isinstance(planned, tuple):
            return planned
        strategy, tasks = "llm", planned
    else:
        named = visible_tools(tools, goal.allowed_tools)
        strategy, tasks = "decomposed", _with_tool_timeouts(decompose_text(goal.text, named), tools)
    return [
        PlanCreated(
            **stamp.envelope("plan_created", "plan", state.iteration),
            iteration=state.iteration,
            strategy=strategy,
            tasks=tasks,
        )
    ]


def _with_tool_timeouts(tasks: tuple[TaskSpec, ...], tools: Tools) -> tuple[TaskSpec, ...]:
    """Give decomposed tasks at least their tool's default timeout, as explicit steps get."""
    return tuple(
        replace_struct(task, timeout_s=max(task.timeout_s, tools[task.tool].default_timeout_s))
        if task.tool in tools
        else task
        for task in tasks
    )


def _schedule(
    state: PlannerState, stamp: Stamp, task: TaskSpec, tools: Tools
) -> TaskScheduled | ApprovalRequested:
    """The ready task scheduled, or its call's approval requested (services.planner.approvals)."""
    outputs = {
        task_id: progress.output
        for task_id, progress in state.progress.items()
        if progress.status == "completed"
    }
    args = ask_or_schedule(state, stamp, task, resolve_references(task.args, outputs), tools)
    if isinstance(args, ApprovalRequested):
        return args
    return TaskScheduled(
        **stamp.envelope("task_scheduled", "task", state.iteration, task.task_id),
        iteration=state.iteration,
        task_id=task.task_id,
        description=task.description,
        tool=task.tool,
        args=args,
        timeout_s=task.timeout_s,
        max_attempts=task.max_attempts,
        allowed_tools=task.allowed_tools,
        llm_budget=remaining(state),
        approval=react_policy(state, task),
    )


def _evaluation_request(state: PlannerState, stamp: Stamp) -> EvaluationRequested:
    return EvaluationRequested(
        **stamp.envelope("evaluation_requested", "evaluation", state.iteration),
        iteration=state.iteration,
        text=state.text,
        expect=state.expect,
        result=iteration_result(state),
        tasks=iteration_outcomes(state),
        llm_budget=remaining(state),
    )


def _after_the_iteration(
    state: PlannerState, stamp: Stamp, tools: Tools, planning: LlmPlanning | None
) -> list[Event] | LlmRequest:
    """The iteration has its verdict, or a message interrupted it: the goal's outcome, or the
    next iteration's plan."""
    evaluation = state.evaluation
    if state.interrupted or (state.queued and state.iteration < state.max_iterations):
        # An interrupting message revises now; messages queued while the iteration ran are
        # taken in by the next one, whatever the verdict (an accepted result is not the
        # goal's last word once it was given input).
        return _revise(state, stamp, tools, planning, evaluation)
    assert evaluation is not None  # _next_decisions comes here with a verdict or interrupted
    if evaluation.verdict == "accept" or state.iteration >= state.max_iterations:
        return [_final_outcome(state, stamp, evaluation)]
    goal = state.goal
    replans = planning is not None and goal is not None and not goal.steps
    if not replans and (stuck := permanent_failures(state)):
        # The rule revision runs the same tasks again: a permanent failure would recur.
        return [_stuck(state, stamp, evaluation, stuck)]
    return _revise(state, stamp, tools, planning, evaluation)


def _revise(
    state: PlannerState,
    stamp: Stamp,
    tools: Tools,
    planning: LlmPlanning | None,
    evaluation: EvaluationCompleted | None,
) -> list[Event] | LlmRequest:
    """The next iteration's plan: after ``evaluation``'s verdict, and taking in the queued
    messages (an interrupted iteration may have no verdict). A model replans a goal it planned;
    otherwise the rule revision runs the same plan again, or, with messages, plans their text."""
    goal = state.goal
    messages = tuple(text for _, text in state.queued)
    feedback = evaluation.feedback if evaluation is not None else _interrupted_feedback(state)
    replans = planning is not None and goal is not None and not goal.steps
    if replans and planning is not None:
        step = llm_plan(
            state, tools=tools, planning=planning, verdict=evaluation, messages=messages
        )
        planned = _llm_tasks(state, stamp, step)
        if not isinstance(planned, tuple):
            return planned
        strategy, tasks = "llm", planned
    elif messages:
        named = visible_tools(tools, state.granted_tools)
        tasks = _with_tool_timeouts(decompose_text("\n".join(messages), named), tools)
        strategy = "message"
    else:
        strategy, tasks = "revised", revise_tasks(state)
    next_iteration = state.iteration + 1
    return [
        PlanRevised(
            **stamp.envelope("plan_revised", "plan", next_iteration),
            iteration=next_iteration,
            strategy=strategy,
            tasks=tasks,
            feedback=feedback,
            messages=tuple(command_id for command_id, _ in state.queued),
        )
    ]


def _interrupted_feedback(state: PlannerState) -> str:
    return f"iteration {state.iteration} was interrupted by a message before it was evaluated"


def _final_outcome(
    state: PlannerState, stamp: Stamp, evaluation: EvaluationCompleted
) -> GoalCompleted | GoalFailed:
    if evaluation.verdict == "accept":
        return GoalCompleted(
            **stamp.envelope("goal_completed", "outcome"),
            result=iteration_result(state),
            iterations=state.iteration,
            score=evaluation.score,
        )
    return GoalFailed(
        **stamp.envelope("goal_failed", "outcome"),
        reason=f"evaluation did not pass after {state.iteration} iterations: {evaluation.feedback}",
        iterations=state.iteration,
        score=evaluation.score,
    )


def permanent_failures(state: PlannerState) -> list[str]:
    """``task (tool): error`` of every task of the iteration that failed permanently."""
    return [
        f"{task.task_id} ({task.tool}): {progress.error}"
        for task in state.plan or ()
        if (progress := state.progress.get(task.task_id)) is not None and progress.permanent
    ]


def _stuck(
    state: PlannerState, stamp: Stamp, evaluation: EvaluationCompleted, stuck: list[str]
) -> GoalFailed:
    return GoalFailed(
        **stamp.envelope("goal_failed", "outcome"),
        reason=f"not revised: {'; '.join(stuck)} failed permanently, and running the same "
        "plan again would fail the same way; fix the step and submit it again",
        iterations=state.iteration,
        score=evaluation.score,
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
