"""Steering a goal: cancel, pause, resume. Pure.

Two steps, as for a goal itself:

- ``record_command`` (intake, any planner replica) turns a validated command into the goal's
  ``cancel_requested`` / ``pause_requested`` / ``resume_requested``, so the request is in the
  log before anything is decided about it: a command that arrives while the active planner
  restarts waits there. A command for a goal that does not exist, or one that does not
  validate, becomes ``command_rejected`` instead.
- ``decide_control`` (the active planner alone) answers a recorded request from the goal's
  state: ``goal_cancelled``, ``goal_paused``, ``goal_resumed``, or ``command_rejected`` with a
  reason saying why the command cannot apply. Each answer is keyed by the command's id, and a
  command already answered is answered once: sending it again changes nothing.

A cancel also closes what waits for a person: each waiting approval is denied (``by``
``_cancel``), and each plain task that waited is cancelled, since no process holds it
(``services.planner.approvals.close_waiting_approvals``). A pause leaves approvals waiting:
a person may still answer, the deadline still runs, and an approved plain task is scheduled
once the goal resumes.
"""

from __future__ import annotations

from datetime import datetime

from events.catalog import (
    CancelRequested,
    CommandRejected,
    ControlAction,
    GoalCancelled,
    GoalPaused,
    GoalResumed,
    PauseRequested,
    ResumeRequested,
)
from events.control_commands import InvalidControl, ParsedControl
from events.model import Event, Stamp
from events.subjects import COMMANDS_GOAL_ID
from services.planner.approvals import close_waiting_approvals
from services.planner.state import PlannerState

__all__ = [
    "CANCELLED_BY",
    "CONTROL_REQUESTS",
    "ControlRequest",
    "action_of",
    "decide_control",
    "record_command",
]

# Who denies an approval that waited in a cancelled goal (reserved, like "_deadline").
CANCELLED_BY = "_cancel"

ControlRequest = CancelRequested | PauseRequested | ResumeRequested
CONTROL_REQUESTS = (CancelRequested, PauseRequested, ResumeRequested)

_ACTIONS: dict[type[ControlRequest], ControlAction] = {
    CancelRequested: "cancel",
    PauseRequested: "pause",
    ResumeRequested: "resume",
}
_REQUESTS: dict[ControlAction, type[ControlRequest]] = {a: c for c, a in _ACTIONS.items()}
_REQUEST_TAGS: dict[ControlAction, str] = {
    "cancel": "cancel_requested",
    "pause": "pause_requested",
    "resume": "resume_requested",
}


def action_of(request: ControlRequest) -> ControlAction:
    return _ACTIONS[type(request)]


# -- intake ------------------------------------------------------------------------------


def record_command(
    command: ParsedControl | InvalidControl, *, goal_exists: bool, now: datetime, producer: str
) -> list[Event]:
    """The event that records ``command``: its request on the goal, or its rejection.

    ``goal_exists``: the goal the command names has events in the log. A rejection goes on
    that goal when it exists, else on the reserved ``_intake`` (a goal's first event must be
    its own: a rejection there would keep the goal id from ever being submitted).
    """
    if isinstance(command, InvalidControl):
        return [_rejection_at_intake(command, goal_exists=goal_exists, now=now, producer=producer)]
    if not goal_exists:
        reason = (
            f"no goal {command.goal_id} exists (or it is not admitted yet); "
            f"there is nothing to {command.action}"
        )
        invalid = InvalidControl(command.action, command.command_id, command.goal_id, reason)
        return [_rejection_at_intake(invalid, goal_exists=False, now=now, producer=producer)]
    stamp = Stamp.at_intake(command.goal_id, now=now, producer=producer)
    request = _REQUESTS[command.action]
    return [
        request(
            **stamp.envelope(_REQUEST_TAGS[command.action], command.command_id),
            command_id=command.command_id,
            reason=command.reason,
        )
    ]


def _rejection_at_intake(
    command: InvalidControl, *, goal_exists: bool, now: datetime, producer: str
) -> CommandRejected:
    on_goal = bool(command.goal_id) and goal_exists
    stamp = Stamp.at_intake(
        command.goal_id if on_goal else COMMANDS_GOAL_ID, now=now, producer=producer
    )
    return _rejection(stamp, command.action, command.command_id, command.goal_id, command.reason)


# -- the active planner ------------------------------------------------------------------


def decide_control(
    state: PlannerState | None, request: ControlRequest, *, now: datetime, producer: str
) -> list[Event]:
    """The answer to a recorded steering request, given the goal's state; [] if answered."""
    if state is not None and request.command_id in state.commands:
        return []
    stamp = Stamp.caused_by(request, producer=producer, now=now)
    action = action_of(request)
    problem = _why_not(state, request.goal_id, action)
    if problem is not None:
        return [_rejection(stamp, action, request.command_id, request.goal_id, problem)]
    assert state is not None  # _why_not refuses a goal without state
    match request:
        case CancelRequested():
            # The goal's end comes first: an executor that resumes a ReAct task on its
            # denial finds the goal cancelled in the log, and stops the task.
            cancelled = GoalCancelled(
                **stamp.envelope("goal_cancelled", "outcome"),
                command_id=request.command_id,
                reason=request.reason,
                iterations=state.iteration,
            )
            why = "the goal was cancelled" + (f": {request.reason}" if request.reason else "")
            closed = close_waiting_approvals(
                state, stamp, command_id=request.command_id, reason=why, by=CANCELLED_BY
            )
            return [cancelled, *closed]
        case PauseRequested():
            return [
                GoalPaused(
                    **stamp.envelope("goal_paused", request.command_id),
                    command_id=request.command_id,
                    reason=request.reason,
                )
            ]
        case ResumeRequested():
            return [
                GoalResumed(
                    **stamp.envelope("goal_resumed", request.command_id),
                    command_id=request.command_id,
                    reason=request.reason,
                )
            ]


def _why_not(state: PlannerState | None, goal_id: str, action: ControlAction) -> str | None:
    """Why ``action`` cannot apply to the goal now, or None when it can."""
    if state is None:
        return f"goal {goal_id} was never accepted; there is nothing to {action}"
    if state.outcome == "rejected":
        return f"goal {goal_id} was rejected at intake; there is nothing to {action}"
    if state.outcome is not None:
        return f"goal {goal_id} already {state.outcome}; there is nothing to {action}"
    if action == "pause" and state.paused:
        return f"goal {goal_id} is already paused; resume it to go on"
    if action == "resume" and not state.paused:
        return f"goal {goal_id} is not paused; there is nothing to resume"
    return None


def _rejection(
    stamp: Stamp, action: ControlAction, command_id: str, target_goal_id: str, reason: str
) -> CommandRejected:
    return CommandRejected(
        **stamp.envelope("command_rejected", command_id),
        command_id=command_id,
        command=action,
        target_goal_id=target_goal_id,
        reason=reason,
    )
