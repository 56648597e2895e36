"""Intake commands: untrusted JSON from outside, validated before anything enters the log.

A command that parses as a JSON object can always be attributed to a goal (its ``goal_id``,
or one derived from its ``command_id``), so every problem with it becomes a readable
``goal_rejected``. Bytes that are not a JSON object cannot be attributed and go to the DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from events.errors import DecodeError
from events.ids import goal_id_for_command
from events.model import Expect
from events.subjects import SUBJECT_TOKEN, is_reserved_goal_id

__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "ExpectCommand",
    "ForkCommand",
    "GoalCommand",
    "ParsedGoal",
    "RejectedGoal",
    "StepCommand",
    "parse_goal_command",
]

DEFAULT_MAX_ITERATIONS = 3
_ID_PATTERN = SUBJECT_TOKEN.pattern  # one subject token: letters, digits, - and _


class StepCommand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One explicit step. Without ``id``/``depends_on``, steps run in the order given."""

    tool: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    args: dict[str, Any] = {}
    id: Annotated[str, msgspec.Meta(pattern=_ID_PATTERN)] | None = None
    depends_on: tuple[Annotated[str, msgspec.Meta(pattern=_ID_PATTERN)], ...] | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None


class ForkCommand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Start from the state of goal ``goal_id`` as of its event at stream sequence ``at_seq``."""

    goal_id: Annotated[str, msgspec.Meta(pattern=_ID_PATTERN)]
    at_seq: Annotated[int, msgspec.Meta(ge=1)]


class ExpectCommand(Expect, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``expect`` as a client sends it: strict, so a misspelt check is rejected, not ignored."""


class GoalCommand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The JSON published to ``agora.intake.goal``. Only ``text`` is required."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
    command_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    goal_id: Annotated[str, msgspec.Meta(pattern=_ID_PATTERN)] | None = None
    steps: Annotated[tuple[StepCommand, ...], msgspec.Meta(max_length=100)] | None = None
    expect: ExpectCommand | None = None
    max_iterations: Annotated[int, msgspec.Meta(ge=1, le=10)] = DEFAULT_MAX_ITERATIONS
    metadata: dict[str, Any] = {}
    # The goal's LLM budget (every service's calls count); exceeding it fails the goal.
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] | None = None
    max_cost_usd: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] | None = None
    forked_from: ForkCommand | None = None


@dataclass(frozen=True, slots=True)
class ParsedGoal:
    command: GoalCommand
    command_id: str
    goal_id: str


@dataclass(frozen=True, slots=True)
class RejectedGoal:
    command_id: str
    goal_id: str
    reason: str
    text: str


_json_decoder = msgspec.json.Decoder()


def parse_goal_command(
    data: bytes, *, fallback_command_id: str, max_bytes: int
) -> ParsedGoal | RejectedGoal:
    """Validate intake bytes. Raises ``DecodeError`` only when no goal can be blamed."""
    try:
        raw = _json_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(f"intake command is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise DecodeError(f"intake command must be a JSON object, got {type(raw).__name__}")

    command_id = raw.get("command_id")
    if not isinstance(command_id, str) or not command_id:
        command_id = fallback_command_id
    goal_id = raw.get("goal_id")
    reserved = isinstance(goal_id, str) and is_reserved_goal_id(goal_id)
    if not isinstance(goal_id, str) or reserved or not SUBJECT_TOKEN.match(goal_id):
        # The rejection lands on the goal id the command_id derives (what the client would
        # have got without a goal_id): never on a subject that is not the client's.
        goal_id = goal_id_for_command(command_id)
    text = raw.get("text") if isinstance(raw.get("text"), str) else ""
    assert isinstance(text, str)

    def reject(reason: str) -> RejectedGoal:
        return RejectedGoal(command_id=command_id, goal_id=goal_id, reason=reason, text=text[:500])

    if reserved:
        return reject(
            f"goal_id {raw['goal_id']!r} is reserved: ids starting with '_' belong to the "
            "platform; choose another goal_id"
        )
    if len(data) > max_bytes:
        return reject(f"command is {len(data)} bytes; the limit is {max_bytes} bytes")
    try:
        command = msgspec.convert(raw, GoalCommand)
    except msgspec.ValidationError as exc:
        return reject(f"invalid goal command: {exc}")
    return ParsedGoal(command=command, command_id=command_id, goal_id=goal_id)
