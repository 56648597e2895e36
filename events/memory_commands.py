"""Memory intake commands: untrusted JSON from outside, validated by the memory service.

``agora.intake.memory.forget`` (stream ``AGORA_INTAKE``, header ``Nats-Msg-Id`` =
``command_id``) takes ``{"command_id": "c-1", "key": "g-7/1/s2"}`` to forget one item (and
every copy of its text), or ``{"command_id": "c-2", "goal_id": "g-7"}`` to forget everything
learned in a goal; ``reason`` is optional. A command that does not validate cannot be
attributed to a goal, so it goes to the DLQ with the reason.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from events.errors import DecodeError
from events.subjects import SUBJECT_TOKEN, is_subject_token
from events.untrusted_json import decode_json

__all__ = ["INTAKE_MEMORY_FORGET", "ForgetCommand", "parse_forget_command"]

INTAKE_MEMORY_FORGET = "agora.intake.memory.forget"


class ForgetCommand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    command_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)] | None = None
    goal_id: Annotated[str, msgspec.Meta(pattern=SUBJECT_TOKEN.pattern)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""

    def __post_init__(self) -> None:
        if self.goal_id is not None and not is_subject_token(self.goal_id):
            raise ValueError(f"goal_id {self.goal_id!r} is not one subject token")


_decoder = msgspec.json.Decoder(ForgetCommand)


def parse_forget_command(data: bytes) -> ForgetCommand:
    """Validate a forget command; ``DecodeError`` says what is wrong with it."""
    try:
        command = decode_json(_decoder, data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise DecodeError(f"invalid memory forget command: {exc}") from exc
    if (command.key is None) == (command.goal_id is None):
        raise DecodeError("a memory forget command names exactly one of `key` or `goal_id`")
    return command
