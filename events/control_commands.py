"""Commands that steer a goal that runs: cancel it, pause it, resume it. Untrusted JSON.

``agora.intake.cancel``, ``agora.intake.pause`` and ``agora.intake.resume`` (stream
``AGORA_INTAKE``, header ``Nats-Msg-Id`` = ``command_id``) each take
``{"command_id": "c-9", "goal_id": "g-7", "reason": "wrong input"}``; only ``goal_id`` is
required. ``command_id`` defaults to the ``Nats-Msg-Id`` header, else ``intake-<stream seq>``.

A command that is a JSON object but does not validate becomes a ``command_rejected`` with the
reason; bytes that are not a JSON object go to the DLQ (``DecodeError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec

from events.catalog import ControlAction
from events.subjects import (
    INTAKE_CANCEL,
    INTAKE_PAUSE,
    INTAKE_RESUME,
    SUBJECT_TOKEN,
    is_reserved_goal_id,
    is_subject_token,
)
from events.untrusted_json import decode_command_object, text_of

__all__ = [
    "CONTROL_SUBJECTS",
    "CancelCommand",
    "ControlCommand",
    "InvalidControl",
    "ParsedControl",
    "PauseCommand",
    "ResumeCommand",
    "parse_control_command",
]


class ControlCommand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every steering command carries: the goal it names, and why."""

    goal_id: Annotated[str, msgspec.Meta(pattern=SUBJECT_TOKEN.pattern)]
    command_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""

    def __post_init__(self) -> None:
        # The schema's pattern says this as well; Python's ``$`` alone lets a final newline in.
        if not is_subject_token(self.goal_id):
            raise ValueError(f"goal_id {self.goal_id!r} must be 1-128 letters, digits, '-' or '_'")


class CancelCommand(ControlCommand, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``agora.intake.cancel``: end the goal; its running tasks are told to stop."""


class PauseCommand(ControlCommand, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``agora.intake.pause``: schedule nothing more of the goal until it is resumed."""


class ResumeCommand(ControlCommand, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``agora.intake.resume``: a paused goal goes on from where it stopped."""


# Intake subject -> what it asks, and the schema of its JSON.
CONTROL_SUBJECTS: dict[str, tuple[ControlAction, type[ControlCommand]]] = {
    INTAKE_CANCEL: ("cancel", CancelCommand),
    INTAKE_PAUSE: ("pause", PauseCommand),
    INTAKE_RESUME: ("resume", ResumeCommand),
}


@dataclass(frozen=True, slots=True)
class ParsedControl:
    action: ControlAction
    command_id: str
    goal_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class InvalidControl:
    """A command agora cannot act on, with the goal it named ("" if none) and why."""

    action: ControlAction
    command_id: str
    goal_id: str
    reason: str


def parse_control_command(
    subject: str, data: bytes, *, fallback_command_id: str
) -> ParsedControl | InvalidControl:
    """Validate a steering command published on ``subject``. Raises ``DecodeError`` only for
    bytes that are not a JSON object (nothing to reject)."""
    action, schema = CONTROL_SUBJECTS[subject]
    raw = decode_command_object(data, f"{action} command")
    command_id = text_of(raw.get("command_id")) or fallback_command_id
    named = text_of(raw.get("goal_id"))

    def invalid(reason: str) -> InvalidControl:
        goal_id = named if is_subject_token(named) and not is_reserved_goal_id(named) else ""
        return InvalidControl(action, command_id, goal_id, reason)

    if is_reserved_goal_id(named):
        return invalid(f"goal_id {named!r} is reserved: ids starting with '_' are not goals")
    try:
        command = msgspec.convert(raw, schema)
    except msgspec.ValidationError as exc:
        return invalid(f"invalid {action} command: {exc}")
    return ParsedControl(action, command_id, command.goal_id, command.reason)
