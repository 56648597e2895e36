"""Approvals: a call the goal's policy names waits for a person. Pure.

Three decisions, in the shape of steering (``services.planner.control``), what a ReAct task
carries so that the executor asks about the calls its model chooses (:func:`react_policy`),
and what closes the waits of an iteration that ends early (:func:`close_waiting_approvals`):

- :func:`ask_or_schedule` (the active planner, when a task becomes ready): the task is
  scheduled, or, when the goal's approval policy names the call and nobody answered yet,
  ``approval_requested`` is recorded instead and the task waits. Nothing runs and no process
  holds anything while it waits: the request is an event, and so will be its answer.
- :func:`record_answer` (intake, any planner replica) turns an answer from
  ``agora.intake.approval`` into the goal's ``approval_answered``, or an ``approval_rejected``
  when the answer is invalid or names a goal that does not exist.
- :func:`decide_answer` (the active planner) answers a recorded answer from the goal's state:
  ``approval_granted`` (with the edited arguments, checked against the tool's schema),
  ``approval_denied``, or ``approval_rejected`` saying why it cannot apply. An answer is acted
  on once per command id, and a request is answered once: a later answer is rejected, but the
  scheduled deny of a deadline that comes after a person answered is dropped silently.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from events.approval_commands import DEADLINE_BY, InvalidAnswer, ParsedAnswer, approval_id
from events.approvals import ApprovalPolicy, approval_reason
from events.catalog import (
    ApprovalAnswered,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    TaskCancelled,
)
from events.model import Event, Stamp, TaskSpec
from events.subjects import COMMANDS_GOAL_ID
from events.tools import REACT_TOOL, argument_problems
from services.planner.intake import Tools
from services.planner.state import Approval, PlannerState, is_finished

__all__ = [
    "ask_or_schedule",
    "close_waiting_approvals",
    "decide_answer",
    "react_policy",
    "record_answer",
]


# -- the active planner: a task is ready ------------------------------------------------


def ask_or_schedule(
    state: PlannerState, stamp: Stamp, task: TaskSpec, args: dict[str, Any], tools: Tools
) -> ApprovalRequested | dict[str, Any]:
    """The approval request for ``task`` called with ``args`` (resolved), or the arguments it
    is scheduled with: its own when no approval is needed, the granted ones when one was."""
    approval = state.approval_for(task.task_id)
    if approval is not None and approval.status == "granted" and approval.args is not None:
        return dict(approval.args)
    policy = state.policy
    reason = approval_reason(policy, task.tool, args, tools.get(task.tool))
    if reason is None or policy is None:
        return args
    return ApprovalRequested(
        **stamp.envelope("approval_requested", "approval", state.iteration, task.task_id),
        approval_id=approval_id(state.goal_id, state.iteration, task.task_id),
        iteration=state.iteration,
        task_id=task.task_id,
        tool=task.tool,
        args=args,
        description=task.description,
        reason=reason,
        answerers=policy.answerers,
        deadline=stamp.occurred_at + timedelta(seconds=policy.deadline_s),
    )


def react_policy(state: PlannerState, task: TaskSpec) -> ApprovalPolicy | None:
    """The policy a ReAct task is scheduled with: the goal's, since the executor checks each
    call its model asks for against it (``services.executor.react``); None for a plain task,
    whose one call was checked here before it was scheduled."""
    return state.policy if task.tool == REACT_TOOL else None


# -- the active planner: the iteration ends early (a cancel, an interrupting message) ----


def close_waiting_approvals(
    state: PlannerState, stamp: Stamp, *, command_id: str, reason: str, by: str
) -> list[ApprovalDenied | TaskCancelled]:
    """What ends the current iteration's waits when the iteration ends early, for ``reason``.

    Each approval that waits is denied (``by`` a reserved name), so it waits for nobody: a later
    answer is rejected, and a ReAct task's executor resumes the task on the denial and stops
    it (its ``task_cancelled`` is the executor's). A plain task that waited for approval, or
    was approved but not yet scheduled (a paused goal), is held by no process: the planner
    records its ``task_cancelled`` itself, so the ``tasks`` view does not show it waiting.
    """
    denied: list[ApprovalDenied | TaskCancelled] = [
        ApprovalDenied(
            **stamp.envelope("approval_denied", approval_id),
            approval_id=approval_id,
            command_id=command_id,
            iteration=request.iteration,
            task_id=request.task_id,
            tool=request.tool,
            reason=reason,
            by=by,
            step=request.step,
            call=request.call,
        )
        for approval_id, approval in state.approvals.items()
        if approval.status == "waiting"
        and (request := approval.request).iteration == state.iteration
    ]
    unheld = [
        TaskCancelled(
            **stamp.envelope("task_cancelled", state.iteration, task.task_id),
            iteration=state.iteration,
            task_id=task.task_id,
            tool=task.tool,
            attempts=0,
            duration_ms=0.0,
            reason=reason,
        )
        for task in state.plan or ()
        if state.status_of(task.task_id) in ("awaiting_approval", "approved")
    ]
    return [*denied, *unheld]


# -- intake --------------------------------------------------------------------------------


def record_answer(
    answer: ParsedAnswer | InvalidAnswer, *, goal_exists: bool, now: datetime, producer: str
) -> list[Event]:
    """The event that records ``answer``: the answer on its goal, or its rejection (on the goal
    when it exists, else on ``_intake``: a goal's first event must be its own)."""
    if isinstance(answer, ParsedAnswer) and not goal_exists:
        reason = (
            f"no goal {answer.goal_id} exists (or it is not admitted yet); "
            f"approval {answer.answer.approval_id} is unknown"
        )
        answer = InvalidAnswer(answer.command_id, answer.answer.approval_id, answer.goal_id, reason)
    if isinstance(answer, InvalidAnswer):
        on_goal = bool(answer.goal_id) and goal_exists
        stamp = Stamp.at_intake(
            answer.goal_id if on_goal else COMMANDS_GOAL_ID, now=now, producer=producer
        )
        return [
            _rejection(stamp, answer.command_id, answer.approval_id, answer.goal_id, answer.reason)
        ]
    given = answer.answer
    stamp = Stamp.at_intake(answer.goal_id, now=now, producer=producer)
    return [
        ApprovalAnswered(
            **stamp.envelope("approval_answered", answer.command_id),
            command_id=answer.command_id,
            approval_id=given.approval_id,
            decision=given.decision,
            reason=given.reason,
            args=given.args,
            by=given.by,
        )
    ]


# -- the active planner: an answer was recorded -------------------------------------------


def decide_answer(
    state: PlannerState | None,
    answer: ApprovalAnswered,
    *,
    tools: Tools,
    now: datetime,
    producer: str,
) -> list[Event]:
    """The decision on a recorded answer, given the goal's state; [] if already acted on."""
    if state is not None and answer.command_id in state.commands:
        return []
    stamp = Stamp.caused_by(answer, producer=producer, now=now)
    approval = state.approvals.get(answer.approval_id) if state is not None else None
    problem = _why_not(state, approval, answer, tools)
    if problem is not None:
        if answer.by == DEADLINE_BY and approval is not None:
            return []  # a deadline that passed after the answer: nothing to say
        return [_rejection(stamp, answer.command_id, answer.approval_id, answer.goal_id, problem)]
    assert approval is not None  # _why_not refuses an unknown request
    request = approval.request
    if answer.decision == "deny":
        return [
            ApprovalDenied(
                **stamp.envelope("approval_denied", request.approval_id),
                approval_id=request.approval_id,
                command_id=answer.command_id,
                iteration=request.iteration,
                task_id=request.task_id,
                tool=request.tool,
                reason=answer.reason or f"denied by {answer.by or 'a person'}",
                by=answer.by,
                step=request.step,
                call=request.call,
            )
        ]
    return [
        ApprovalGranted(
            **stamp.envelope("approval_granted", request.approval_id),
            approval_id=request.approval_id,
            command_id=answer.command_id,
            iteration=request.iteration,
            task_id=request.task_id,
            tool=request.tool,
            args=answer.args if answer.args is not None else request.args,
            original_args=request.args,
            edited=answer.args is not None and answer.args != request.args,
            by=answer.by,
            reason=answer.reason,
            step=request.step,
            call=request.call,
        )
    ]


def _why_not(
    state: PlannerState | None, approval: Approval | None, answer: ApprovalAnswered, tools: Tools
) -> str | None:
    """Why ``answer`` cannot apply now, or None when it can."""
    if state is None or state.goal is None:
        return f"goal {answer.goal_id} was never accepted; no approval waits there"
    if approval is None:
        return f"no approval {answer.approval_id} was requested"
    if approval.status != "waiting":
        when = approval.answer.occurred_at.isoformat() if approval.answer is not None else "before"
        return f"approval {answer.approval_id} was already {approval.status} ({when}); answer once"
    if is_finished(state):
        return f"goal {answer.goal_id} already {state.outcome}; the approval no longer applies"
    return _answer_problem(approval.request, answer, tools)


def _answer_problem(
    request: ApprovalRequested, answer: ApprovalAnswered, tools: Tools
) -> str | None:
    """What keeps a person's answer from applying to a waiting request: who sent it, or
    edited arguments that do not fit the tool."""
    if request.answerers and answer.by != DEADLINE_BY and answer.by not in request.answerers:
        return (
            f"{answer.by or 'an answer without by'} may not answer approval {answer.approval_id}: "
            f"it waits for one of {', '.join(request.answerers)}"
        )
    if answer.args is not None:
        spec = tools.get(request.tool)
        if spec is None:
            return f"tool {request.tool} is not known now; its edited arguments cannot be checked"
        problems = argument_problems(spec, answer.args)
        if problems:
            listed = "; ".join(f"{where or 'args'}: {what}" for where, what in problems[:10])
            return f"edited arguments do not fit {request.tool}'s schema: {listed}"
    return None


def _rejection(
    stamp: Stamp, command_id: str, approval: str, target_goal_id: str, reason: str
) -> ApprovalRejected:
    return ApprovalRejected(
        **stamp.envelope("approval_rejected", command_id),
        command_id=command_id,
        approval_id=approval,
        target_goal_id=target_goal_id,
        reason=reason,
    )
