"""Input for a goal that runs: a message, handled by the policy the goal chose. Untrusted JSON.

``agora.intake.message`` (stream ``AGORA_INTAKE``, header ``Nats-Msg-Id`` = ``command_id``)
takes ``{"command_id": "c-3", "goal_id": "g-7", "text": "use the EU servers instead"}``;
``goal_id`` and ``text`` are required, ``command_id`` defaults to the ``Nats-Msg-Id`` header,
else ``intake-<stream seq>``.

A command that is a JSON object but does not validate becomes a ``message_rejected`` with the
reason; bytes that are not a JSON object go to the DLQ (``DecodeError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec

from events.subjects import SUBJECT_TOKEN, is_reserved_goal_id, is_subject_token
from events.untrusted_json import decode_command_object, text_of

__all__ = [
    "MAX_MESSAGE_CHARS",
    "InvalidMessage",
    "MessageCommand",
    "ParsedMessage",
    "parse_message_command",
]

# As long as a goal's own text may be.
MAX_MESSAGE_CHARS = 20_000


class MessageCommand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The JSON published to ``agora.intake.message``."""

    goal_id: Annotated[str, msgspec.Meta(pattern=SUBJECT_TOKEN.pattern)]
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    command_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None

    def __post_init__(self) -> None:
        # The schema's pattern says this as well; Python's ``$`` alone lets a final newline in.
        if not is_subject_token(self.goal_id):
            raise ValueError(f"goal_id {self.goal_id!r} must be 1-128 letters, digits, '-' or '_'")
        if not self.text.strip():
            raise ValueError("text is blank; say what the goal should take in")


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    command_id: str
    goal_id: str
    text: str


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """A message agora cannot act on, with the goal it named ("" if none) and why."""

    command_id: str
    goal_id: str
    reason: str


def parse_message_command(
    data: bytes, *, fallback_command_id: str, max_bytes: int
) -> ParsedMessage | InvalidMessage:
    """Validate a message. Raises ``DecodeError`` only for bytes that are not a JSON object."""
    raw = decode_command_object(data, "message")
    command_id = text_of(raw.get("command_id"))[:128] or fallback_command_id
    named = text_of(raw.get("goal_id"))

    def invalid(reason: str) -> InvalidMessage:
        goal_id = named if is_subject_token(named) and not is_reserved_goal_id(named) else ""
        return InvalidMessage(command_id, goal_id, reason)

    if len(data) > max_bytes:
        return invalid(f"the message is {len(data)} bytes; the limit is {max_bytes} bytes")
    if is_reserved_goal_id(named):
        return invalid(f"goal_id {named!r} is reserved: ids starting with '_' are not goals")
    try:
        command = msgspec.convert(raw, MessageCommand)
    except msgspec.ValidationError as exc:
        return invalid(f"invalid message: {exc}")
    return ParsedMessage(command_id, command.goal_id, command.text)
