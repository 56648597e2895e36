"""Answers to approval requests, and the deny nats-server delivers at a deadline. Untrusted JSON.

``agora.intake.approval`` (stream ``AGORA_INTAKE``, header ``Nats-Msg-Id`` = ``command_id``)
takes ``{"command_id": "c-1", "approval_id": "g-7/1/s2", "decision": "approve"}``, with
``"decision": "deny", "reason": "…"``, or ``"decision": "approve", "args": {…}`` (the call runs
with these arguments instead; they must fit the tool's schema). ``by`` names who answers.

An approval id is ``<goal_id>/<iteration>/<task_id>`` (a ReAct step's call adds
``/<step>/<call>``), so an answer names its goal. A command that is a JSON object but does not
validate becomes an ``approval_rejected`` with the reason; bytes that are not a JSON object go
to the DLQ (``DecodeError``).

The deadline is a scheduled message: when the planner records ``approval_requested`` it stores
a deny answer on ``agora.intake.deadline.<goal>.<iteration>.<task>[.<step>.<call>]`` with
``Nats-Schedule: @at <deadline>``, and the server delivers it to ``agora.intake.approval`` then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from events.catalog import ApprovalDecision, ApprovalRequested
from events.schedules import SCHEDULE_HEADER, TARGET_HEADER
from events.subjects import INTAKE_APPROVAL, INTAKE_DEADLINE_PREFIX, is_reserved_goal_id
from events.untrusted_json import decode_command_object, text_of

__all__ = [
    "APPROVAL_ID",
    "DEADLINE_BY",
    "ApprovalAnswer",
    "DeadlineMessage",
    "InvalidAnswer",
    "ParsedAnswer",
    "approval_id",
    "deadline_message",
    "goal_of_approval",
    "parse_approval_answer",
]

_ID_CHARS = r"[A-Za-z0-9_-]{1,128}"
_NUMBER = r"[0-9]{1,6}"
APPROVAL_ID = re.compile(rf"^({_ID_CHARS})/({_NUMBER})/({_ID_CHARS})(?:/({_NUMBER})/({_NUMBER}))?$")
_SECOND = timedelta(seconds=1)
# Who the answer at a deadline is from: reserved, like every name starting with "_".
DEADLINE_BY = "_deadline"


def approval_id(goal_id: str, iteration: int, task_id: str, step: int = 0, call: int = 0) -> str:
    base = f"{goal_id}/{iteration}/{task_id}"
    return f"{base}/{step}/{call}" if step else base


def goal_of_approval(approval: str) -> str:
    """The goal an approval id names, or "" when it is no approval id."""
    match = APPROVAL_ID.fullmatch(approval)
    return match.group(1) if match is not None else ""


class ApprovalAnswer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The JSON published to ``agora.intake.approval``."""

    approval_id: Annotated[str, msgspec.Meta(min_length=1, max_length=400)]
    decision: ApprovalDecision
    command_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    args: dict[str, Any] | None = None
    by: Annotated[str, msgspec.Meta(max_length=200)] = ""

    def __post_init__(self) -> None:
        if not goal_of_approval(self.approval_id):
            raise ValueError(
                f"approval_id {self.approval_id!r} is not an approval id "
                "(<goal_id>/<iteration>/<task_id>, as `agora approvals` lists them)"
            )
        if self.args is not None and self.decision != "approve":
            raise ValueError("args (edited arguments) go with decision 'approve' only")


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    command_id: str
    goal_id: str
    answer: ApprovalAnswer


@dataclass(frozen=True, slots=True)
class InvalidAnswer:
    """An answer agora cannot act on, with the goal it named ("" if none) and why."""

    command_id: str
    approval_id: str
    goal_id: str
    reason: str


def parse_approval_answer(
    data: bytes, *, fallback_command_id: str, max_bytes: int
) -> ParsedAnswer | InvalidAnswer:
    """Validate an answer. Raises ``DecodeError`` only for bytes that are not a JSON object."""
    raw = decode_command_object(data, "approval answer")
    command_id = text_of(raw.get("command_id"))[:200] or fallback_command_id
    named = text_of(raw.get("approval_id"))[:400]
    goal_id = goal_of_approval(named)

    def invalid(reason: str) -> InvalidAnswer:
        target = "" if is_reserved_goal_id(goal_id) else goal_id
        return InvalidAnswer(command_id, named, target, reason)

    if len(data) > max_bytes:
        return invalid(f"the answer is {len(data)} bytes; the limit is {max_bytes} bytes")
    if goal_id and is_reserved_goal_id(goal_id):
        return invalid(f"approval {named!r} names a reserved goal id; no approval waits there")
    try:
        answer = msgspec.convert(raw, ApprovalAnswer)
    except msgspec.ValidationError as exc:
        return invalid(f"invalid approval answer: {exc}")
    return ParsedAnswer(command_id, goal_id, answer)


@dataclass(frozen=True, slots=True)
class DeadlineMessage:
    """What to publish so that the deny arrives at the deadline: a schedule, or (when the
    deadline already passed) the answer itself."""

    subject: str
    headers: dict[str, str]
    body: bytes


def deadline_message(request: ApprovalRequested, *, now: datetime) -> DeadlineMessage:
    """The scheduled deny of ``request``, the same bytes on every call (so a republish after a
    crash stores nothing new)."""
    command_id = f"deadline-{request.approval_id}"
    when = request.deadline.astimezone(UTC)
    body = msgspec.json.encode(
        {
            "command_id": command_id,
            "approval_id": request.approval_id,
            "decision": "deny",
            "reason": f"no answer by the deadline {when.strftime('%Y-%m-%dT%H:%M:%SZ')}",
            "by": DEADLINE_BY,
        }
    )
    if when <= now:
        return DeadlineMessage(INTAKE_APPROVAL, {"Nats-Msg-Id": command_id}, body)
    token = request.approval_id.replace("/", ".")
    # Rounded up to the second the server reads, so the deny never comes early.
    at = when if when.microsecond == 0 else when.replace(microsecond=0) + _SECOND
    return DeadlineMessage(
        INTAKE_DEADLINE_PREFIX + token,
        {
            SCHEDULE_HEADER: f"@at {at.strftime('%Y-%m-%dT%H:%M:%SZ')}",
            TARGET_HEADER: INTAKE_APPROVAL,
            # Kept past the intake stream's max_age until it fires (a week at most).
            "Nats-TTL": "never",
            "Nats-Msg-Id": command_id,
        },
        body,
    )
