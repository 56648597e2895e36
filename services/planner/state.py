"""The planner's view of one goal, rebuilt by folding that goal's events.

``evolve`` is pure and idempotent: applying an event twice leaves the state as applying it
once. The planner relies on that because its adapter applies the planner's own outputs right
after publishing them (write-through) and then sees the same events again from the stream.
Events that arrive before the goal was accepted are ignored; a rejection makes a terminal
state so nothing is ever decided for that goal again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec
from msgspec import field
from msgspec.structs import replace

from events.approvals import ApprovalPolicy
from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    CommandRejected,
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCancelled,
    GoalCompleted,
    GoalDequeued,
    GoalFailed,
    GoalPaused,
    GoalQueued,
    GoalRejected,
    GoalResumed,
    IterationInterrupted,
    LlmResponded,
    MessagePolicy,
    MessageQueued,
    MessageRejected,
    PlanCreated,
    PlanRevised,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from events.model import Budget, Event, Expect, MemoryItem, TaskOutcome, TaskSpec

__all__ = [
    "Approval",
    "GoalOutcome",
    "PlannerState",
    "TaskProgress",
    "TaskStatus",
    "evolve",
    "is_finished",
    "iteration_outcomes",
    "iteration_result",
    "ready_tasks",
]

TaskStatus = Literal[
    "pending", "awaiting_approval", "approved", "scheduled", "completed", "failed", "skipped"
]
GoalOutcome = Literal["completed", "failed", "rejected", "cancelled"]

_TERMINAL: frozenset[TaskStatus] = frozenset({"completed", "failed", "skipped"})
# How far along a task that has not ended is: a status never goes back.
_ORDER: dict[TaskStatus, int] = {
    "pending": 0,
    "awaiting_approval": 1,
    "approved": 2,
    "scheduled": 3,
    "completed": 4,
    "failed": 4,
    "skipped": 4,
}
_OUTCOME_STATUS: dict[TaskStatus, Literal["completed", "failed", "skipped"]] = {
    "completed": "completed",
    "failed": "failed",
    "skipped": "skipped",
}


class TaskProgress(msgspec.Struct, frozen=True):
    """Where one task of the current iteration stands."""

    status: TaskStatus = "pending"
    output: str = ""
    error: str = ""
    # A failure the same task cannot get past by running again (TaskFailed.transient False).
    permanent: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.status in _TERMINAL


class Approval(msgspec.Struct, frozen=True):
    """One approval request of the goal and where it stands."""

    request: ApprovalRequested
    status: Literal["waiting", "granted", "denied"] = "waiting"
    # The arguments the call runs with once granted (the request's, or the person's edit).
    args: Mapping[str, object] | None = None
    # The event that answered it (approval_granted / approval_denied), for "already answered".
    answer: ApprovalGranted | ApprovalDenied | None = None


class PlannerState(msgspec.Struct, frozen=True):
    """One goal as the planner sees it. Only the current iteration's progress is kept.

    A frozen msgspec struct rather than a frozen dataclass: the planner copies it for every
    event it folds, and ``msgspec.structs.replace`` copies it some 40 times faster than
    ``dataclasses.replace`` (whose generated ``__init__`` sets each field through
    ``object.__setattr__``).
    """

    goal_id: str
    command_id: str
    # The accepted command; None only for a goal that was rejected at intake.
    goal: GoalAccepted | None
    iteration: int = 1
    context_requested: bool = False
    context_received: bool = False
    plan: tuple[TaskSpec, ...] | None = None
    progress: Mapping[str, TaskProgress] = field(default_factory=dict)
    evaluation_requested: bool = False
    evaluation: EvaluationCompleted | None = None
    outcome: GoalOutcome | None = None
    # What memory offered for the first plan (LLM strategies put it in the prompt).
    context: tuple[MemoryItem, ...] = ()
    # Every recorded LLM answer of the goal, whichever service asked, by request hash.
    llm_answers: Mapping[str, LlmResponded] = field(default_factory=dict)
    # (tokens, cost) of every llm_responded of the goal, by event id (so a re-seen one counts once).
    llm_spend: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    # Tokens spent when the current planning phase (first plan, or a revision) began: the
    # planner's requests of that phase size their max_tokens from it, deterministically.
    planning_base_tokens: int = 0
    # Paused (goal_paused, not yet goal_resumed): nothing new is decided but steering commands.
    paused: bool = False
    # Every steering command (cancel, pause, resume) already answered, by command id: a
    # command sent again is answered once.
    commands: frozenset[str] = frozenset()
    # Every approval request of the goal (any iteration), by approval id.
    approvals: Mapping[str, Approval] = field(default_factory=dict)
    # Flow control (services/planner/flow.py): "queued" waits for a slot, nothing is planned
    # until "dequeued"; None: no flow limit applied when the goal was admitted.
    flow: Literal["queued", "dequeued"] | None = None
    # Messages (command id, text) queued or interrupting, that the next revision takes in.
    queued: tuple[tuple[str, str], ...] = ()
    # The current iteration was interrupted by a message: its revision is due now.
    interrupted: bool = False

    @property
    def on_message(self) -> MessagePolicy:
        """What a message for the goal does while it runs (the policy it was submitted with)."""
        return self.goal.on_message if self.goal is not None else "reject"

    @property
    def open_tasks(self) -> tuple[str, ...]:
        """The current plan's tasks that have not ended (in plan order)."""
        return tuple(
            task.task_id
            for task in self.plan or ()
            if self.status_of(task.task_id) not in _TERMINAL
        )

    @property
    def policy(self) -> ApprovalPolicy | None:
        """The approval policy the goal was admitted under (None: nothing needs approval)."""
        return self.goal.approval if self.goal is not None else None

    def approval_for(self, task_id: str) -> Approval | None:
        """The current iteration's approval of plain task ``task_id`` (not a ReAct step's)."""
        for approval in self.approvals.values():
            request = approval.request
            current = request.iteration == self.iteration and request.step == 0
            if current and request.task_id == task_id:
                return approval
        return None

    @property
    def text(self) -> str:
        return self.goal.text if self.goal is not None else ""

    @property
    def expect(self) -> Expect | None:
        return self.goal.expect if self.goal is not None else None

    @property
    def budget(self) -> Budget | None:
        return self.goal.budget if self.goal is not None else None

    @property
    def granted_tools(self) -> tuple[str, ...]:
        """The untrusted tools the goal's submitter granted (``allowed_tools``)."""
        return self.goal.allowed_tools if self.goal is not None else ()

    @property
    def spent_tokens(self) -> int:
        return sum(tokens for tokens, _ in self.llm_spend.values())

    @property
    def spent_cost_usd(self) -> float:
        return sum(cost for _, cost in self.llm_spend.values())

    @property
    def max_iterations(self) -> int:
        return self.goal.max_iterations if self.goal is not None else 0

    def status_of(self, task_id: str) -> TaskStatus:
        progress = self.progress.get(task_id)
        return progress.status if progress is not None else "pending"

    @property
    def all_tasks_done(self) -> bool:
        return self.plan is not None and all(
            self.status_of(task.task_id) in _TERMINAL for task in self.plan
        )


def is_finished(state: PlannerState | None) -> bool:
    """True once the goal completed, failed, was rejected or cancelled: nothing more is ever
    decided (but the rejection of a steering command that comes too late)."""
    return state is not None and state.outcome is not None


def evolve(state: PlannerState | None, event: Event) -> PlannerState | None:
    """The state after ``event``. Pure, idempotent, and tolerant of early or stray events."""
    if state is None:
        return _start(event)
    if isinstance(event, CommandRejected | ApprovalRejected | MessageRejected):
        # Answered even after the goal ended (a cancel that came too late).
        return _answered(state, event.command_id)
    if state.outcome is not None:
        return state
    if isinstance(event, _TASK_EVENTS):
        return _fold_task_event(state, event)
    if isinstance(event, LlmResponded):
        return _fold_llm_answer(state, event)
    return _fold_goal_event(state, event)


def _fold_llm_answer(state: PlannerState, event: LlmResponded) -> PlannerState:
    if event.event_id in state.llm_spend:
        return state
    answers = state.llm_answers
    if event.request_hash not in answers:
        answers = {**answers, event.request_hash: event}
    spend = (event.tokens_in + event.tokens_out, event.cost_usd)
    return replace(state, llm_answers=answers, llm_spend={**state.llm_spend, event.event_id: spend})


def _fold_steering(state: PlannerState, event: _SteeringEvent) -> PlannerState:
    """A steering command's or a message's answer: every one names its command, answered."""
    match event:
        case GoalCancelled(command_id=command_id):
            return replace(_answered(state, command_id), outcome="cancelled")
        case GoalPaused(command_id=command_id):
            return replace(_answered(state, command_id), paused=True)
        case GoalResumed(command_id=command_id):
            return replace(_answered(state, command_id), paused=False)
        case MessageQueued() | IterationInterrupted():
            return _fold_message(state, event)


_SteeringEvent = GoalCancelled | GoalPaused | GoalResumed | MessageQueued | IterationInterrupted


def _fold_goal_event(state: PlannerState, event: Event) -> PlannerState:
    if isinstance(event, _SteeringEvent):
        return _fold_steering(state, event)
    folded = state
    match event:
        case GoalCompleted() | GoalFailed():
            ended: GoalOutcome = "completed" if isinstance(event, GoalCompleted) else "failed"
            folded = replace(state, outcome=ended)
        case GoalQueued() | GoalDequeued():
            folded = _fold_flow(state, event)
        case ContextRequested(iteration=iteration) if iteration == state.iteration:
            folded = replace(state, context_requested=True)
        case ContextProvided(iteration=iteration) if iteration == state.iteration:
            if not state.context_received:
                folded = replace(
                    state,
                    context_received=True,
                    context=event.items,
                    planning_base_tokens=state.spent_tokens,
                )
        case PlanCreated(iteration=iteration, tasks=tasks):
            folded = _start_iteration(state, iteration, tasks)
        case PlanRevised(iteration=iteration, tasks=tasks, messages=messages):
            folded = _start_iteration(state, iteration, tasks, taken_in=messages)
        case EvaluationRequested(iteration=iteration) if iteration == state.iteration:
            folded = replace(state, evaluation_requested=True)
        case EvaluationCompleted(iteration=iteration) if (
            iteration == state.iteration and state.evaluation_requested and state.evaluation is None
        ):
            folded = replace(state, evaluation=event, planning_base_tokens=state.spent_tokens)
        case _:
            # GoalAccepted/GoalRejected for a goal that already exists, events of old
            # iterations, and event types the planner does not track change nothing.
            pass
    return folded


def _fold_flow(state: PlannerState, event: GoalQueued | GoalDequeued) -> PlannerState:
    # Only forward: a goal that left the queue never waits in it again.
    if isinstance(event, GoalQueued):
        return replace(state, flow="queued") if state.flow is None else state
    return replace(state, flow="dequeued") if state.flow != "dequeued" else state


def _fold_message(state: PlannerState, event: MessageQueued | IterationInterrupted) -> PlannerState:
    if event.command_id in state.commands:
        return state
    folded = replace(
        _answered(state, event.command_id), queued=(*state.queued, (event.command_id, event.text))
    )
    if isinstance(event, IterationInterrupted) and event.iteration == state.iteration:
        # The revision is planned from here: its model requests size their budget from now.
        return replace(folded, interrupted=True, planning_base_tokens=state.spent_tokens)
    return folded


def _fold_request(state: PlannerState, event: ApprovalRequested) -> PlannerState:
    if event.approval_id in state.approvals:
        return state
    folded = replace(state, approvals={**state.approvals, event.approval_id: Approval(event)})
    if event.step:  # a ReAct step's call: its task is running
        return folded
    waiting = TaskProgress(status="awaiting_approval")
    return _advance_task(folded, event.iteration, event.task_id, waiting)


def _fold_answer(state: PlannerState, event: ApprovalGranted | ApprovalDenied) -> PlannerState:
    known = state.approvals.get(event.approval_id)
    if known is None or known.status != "waiting":
        return _answered(state, event.command_id)
    approval = replace(
        known,
        status="granted" if isinstance(event, ApprovalGranted) else "denied",
        args=event.args if isinstance(event, ApprovalGranted) else None,
        answer=event,
    )
    folded = replace(
        _answered(state, event.command_id),
        approvals={**state.approvals, event.approval_id: approval},
    )
    if event.step:
        return folded
    if isinstance(event, ApprovalGranted):
        approved = TaskProgress(status="approved")
        return _advance_task(folded, event.iteration, event.task_id, approved)
    denied = TaskProgress(status="failed", error=f"approval denied: {event.reason}", permanent=True)
    return _skip_dependents_of_unsuccessful(
        _advance_task(folded, event.iteration, event.task_id, denied)
    )


def _answered(state: PlannerState, command_id: str) -> PlannerState:
    if command_id in state.commands:
        return state
    return replace(state, commands=state.commands | {command_id})


_TASK_EVENTS = (
    TaskScheduled,
    TaskCompleted,
    TaskFailed,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalDenied,
)


def _fold_task_event(
    state: PlannerState,
    event: TaskScheduled
    | TaskCompleted
    | TaskFailed
    | ApprovalRequested
    | ApprovalGranted
    | ApprovalDenied,
) -> PlannerState:
    match event:
        case ApprovalRequested():
            return _fold_request(state, event)
        case ApprovalGranted() | ApprovalDenied():
            return _fold_answer(state, event)
        case TaskScheduled():
            progress = TaskProgress(status="scheduled")
        case TaskCompleted():
            progress = TaskProgress(status="completed", output=event.output)
        case TaskFailed():
            progress = TaskProgress(
                status="failed", error=event.error, permanent=not event.transient
            )
    advanced = _advance_task(state, event.iteration, event.task_id, progress)
    if advanced is state or progress.status != "failed":
        # Only a failure can leave dependents that will never run.
        return advanced
    return _skip_dependents_of_unsuccessful(advanced)


def _start(event: Event) -> PlannerState | None:
    match event:
        case GoalAccepted():
            return PlannerState(goal_id=event.goal_id, command_id=event.command_id, goal=event)
        case GoalRejected():
            return PlannerState(
                goal_id=event.goal_id, command_id=event.command_id, goal=None, outcome="rejected"
            )
        case _:
            return None


def _start_iteration(
    state: PlannerState,
    iteration: int,
    tasks: tuple[TaskSpec, ...],
    *,
    taken_in: tuple[str, ...] = (),
) -> PlannerState:
    # A plan for an iteration we already have (a re-seen plan) or an older one changes nothing.
    if iteration < state.iteration or (iteration == state.iteration and state.plan is not None):
        return state
    # A fork's first plan starts with the tasks it carried over already completed.
    carried = state.goal.carried if state.goal is not None and iteration == 1 else ()
    return replace(
        state,
        iteration=iteration,
        plan=tasks,
        progress={
            outcome.task_id: TaskProgress(status="completed", output=outcome.output)
            for outcome in carried
        },
        evaluation_requested=False,
        evaluation=None,
        queued=tuple(queued for queued in state.queued if queued[0] not in taken_in),
        interrupted=False,
    )


def _advance_task(
    state: PlannerState, iteration: int, task_id: str, new: TaskProgress
) -> PlannerState:
    if iteration != state.iteration or state.plan is None:
        return state
    if all(task.task_id != task_id for task in state.plan):
        return state
    current = state.status_of(task_id)
    # Statuses only move forward, so a re-seen task_scheduled never undoes a completion, and
    # the first terminal status of a task is the one that counts.
    if current in _TERMINAL or (
        new.status not in _TERMINAL and _ORDER[new.status] <= _ORDER[current]
    ):
        return state
    return replace(state, progress={**state.progress, task_id: new})


def _skip_dependents_of_unsuccessful(state: PlannerState) -> PlannerState:
    """Mark every pending task that (transitively) depends on a failed task as skipped."""
    if state.plan is None:
        return state
    progress = dict(state.progress)
    changed = True
    while changed:
        changed = False
        for task in state.plan:
            if progress.get(task.task_id, TaskProgress()).status != "pending":
                continue
            if any(
                progress.get(dep, TaskProgress()).status in {"failed", "skipped"}
                for dep in task.depends_on
            ):
                progress[task.task_id] = TaskProgress(status="skipped")
                changed = True
    if progress == state.progress:
        return state
    return replace(state, progress=progress)


def ready_tasks(state: PlannerState) -> tuple[TaskSpec, ...]:
    """Tasks of the current plan not yet scheduled whose dependencies all completed (an
    approved task too: it is scheduled now; one waiting for approval is not ready)."""
    if state.plan is None:
        return ()
    return tuple(
        task
        for task in state.plan
        if state.status_of(task.task_id) in ("pending", "approved")
        and all(state.status_of(dep) == "completed" for dep in task.depends_on)
    )


def iteration_outcomes(state: PlannerState) -> tuple[TaskOutcome, ...]:
    """How each task of the current iteration ended, in plan order."""
    outcomes: list[TaskOutcome] = []
    for task in state.plan or ():
        progress = state.progress.get(task.task_id, TaskProgress())
        status = _OUTCOME_STATUS.get(progress.status)
        if status is None:
            continue
        outcomes.append(
            TaskOutcome(
                task_id=task.task_id,
                tool=task.tool,
                status=status,
                output=progress.output,
                error=progress.error,
            )
        )
    return tuple(outcomes)


def iteration_result(state: PlannerState) -> str:
    """The outputs of the plan's completed sink tasks (nobody depends on them), one per line."""
    plan = state.plan or ()
    depended_on = {dep for task in plan for dep in task.depends_on}
    return "\n".join(
        state.progress[task.task_id].output
        for task in plan
        if task.task_id not in depended_on and state.status_of(task.task_id) == "completed"
    )
