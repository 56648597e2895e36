"""Input while a goal runs: a message, handled by the goal's policy. Pure.

Two steps, in the shape of steering (``services.planner.control``):

- :func:`record_message` (intake, any planner replica) turns a message from
  ``agora.intake.message`` into the goal's ``message_received``, or a ``message_rejected`` when
  it is invalid or names a goal that does not exist (then on the reserved ``_intake``).
- :func:`decide_message` (the active planner) answers a recorded message by the policy the goal
  was submitted with (``goal_accepted.on_message``): ``message_rejected`` (policy ``reject``,
  or the message cannot apply), ``message_queued`` (``enqueue``: the revision after the
  current iteration takes it in), or ``iteration_interrupted`` (``interrupt``: the iteration's
  open tasks are cancelled, and the revision follows at once). A message is answered once per
  command id.

The revision itself is made by ``services.planner.decide``.
"""

from __future__ import annotations

from datetime import datetime

from events.catalog import (
    IterationInterrupted,
    MessageQueued,
    MessageReceived,
    MessageRejected,
)
from events.message_commands import InvalidMessage, ParsedMessage
from events.model import Event, Stamp
from events.subjects import COMMANDS_GOAL_ID
from services.planner.approvals import close_waiting_approvals
from services.planner.state import PlannerState

__all__ = [
    "INTERRUPTED_BY",
    "decide_message",
    "record_message",
]

# Who denies an approval that waited in an interrupted iteration (reserved, like "_deadline").
INTERRUPTED_BY = "_interrupt"


# -- intake ------------------------------------------------------------------------------


def record_message(
    message: ParsedMessage | InvalidMessage, *, goal_exists: bool, now: datetime, producer: str
) -> list[Event]:
    """The event that records ``message``: the message on its goal, or its rejection (on the
    goal when it exists, else on ``_intake``: a goal's first event must be its own)."""
    if isinstance(message, ParsedMessage) and not goal_exists:
        reason = (
            f"no goal {message.goal_id} exists (or it is not admitted yet); "
            "there is nothing to send the message to"
        )
        message = InvalidMessage(message.command_id, message.goal_id, reason)
    if isinstance(message, InvalidMessage):
        on_goal = bool(message.goal_id) and goal_exists
        stamp = Stamp.at_intake(
            message.goal_id if on_goal else COMMANDS_GOAL_ID, now=now, producer=producer
        )
        return [_rejection(stamp, message.command_id, message.goal_id, message.reason)]
    stamp = Stamp.at_intake(message.goal_id, now=now, producer=producer)
    return [
        MessageReceived(
            **stamp.envelope("message_received", message.command_id),
            command_id=message.command_id,
            text=message.text,
        )
    ]


# -- the active planner ------------------------------------------------------------------


def decide_message(
    state: PlannerState | None, message: MessageReceived, *, now: datetime, producer: str
) -> list[Event]:
    """The answer to a recorded message, given the goal's state; [] if already answered."""
    if state is not None and message.command_id in state.commands:
        return []
    stamp = Stamp.caused_by(message, producer=producer, now=now)
    problem = _why_not(state, message.goal_id)
    if problem is not None:
        return [_rejection(stamp, message.command_id, message.goal_id, problem)]
    assert state is not None  # _why_not refuses a goal without state
    # Nothing to interrupt before the first plan, or while a revision is already due: the
    # message joins the next revision like a queued one.
    interrupts = state.on_message == "interrupt" and state.plan is not None
    if not interrupts or state.interrupted:
        return [
            MessageQueued(
                **stamp.envelope("message_queued", message.command_id),
                command_id=message.command_id,
                iteration=state.iteration,
                text=message.text,
            )
        ]
    closed = close_waiting_approvals(
        state,
        stamp,
        command_id=message.command_id,
        reason=f"iteration {state.iteration} was interrupted by a message",
        by=INTERRUPTED_BY,
    )
    return [_interruption(state, stamp, message), *closed]


def _why_not(state: PlannerState | None, goal_id: str) -> str | None:
    """Why a message cannot apply to the goal now, or None when it can."""
    if state is None or state.goal is None:
        if state is not None and state.outcome == "rejected":
            return f"goal {goal_id} was rejected at intake; there is nothing to send it to"
        return f"goal {goal_id} was never accepted; there is nothing to send it to"
    if state.outcome is not None:
        return f"goal {goal_id} already {state.outcome}; a message can no longer change it"
    if state.on_message == "reject":
        return (
            f"goal {goal_id} takes no messages while it runs (it was submitted with "
            'on_message "reject"; submit it with "enqueue" or "interrupt" to send it input)'
        )
    if state.iteration >= state.max_iterations:
        return (
            f"goal {goal_id} is in its last iteration ({state.iteration} of "
            f"{state.max_iterations}); no revision is left to take the message in"
        )
    return None


def _interruption(
    state: PlannerState, stamp: Stamp, message: MessageReceived
) -> IterationInterrupted:
    return IterationInterrupted(
        **stamp.envelope("iteration_interrupted", message.command_id),
        command_id=message.command_id,
        iteration=state.iteration,
        text=message.text,
        tasks=state.open_tasks,
        reason=f"a message interrupted iteration {state.iteration}",
    )


def _rejection(stamp: Stamp, command_id: str, target_goal_id: str, reason: str) -> MessageRejected:
    return MessageRejected(
        **stamp.envelope("message_rejected", command_id),
        command_id=command_id,
        target_goal_id=target_goal_id,
        reason=reason,
    )
