"""Intake commands: untrusted JSON from outside, validated before anything enters the log.

A command that parses as a JSON object can always be attributed to a goal (its ``goal_id``,
or one derived from its ``command_id``), so every problem with it becomes a readable
``goal_rejected``. Bytes that are not a JSON object cannot be attributed and go to the DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from events.approvals import GoalApproval
from events.catalog import MessagePolicy
from events.errors import DecodeError
from events.ids import goal_id_for_command
from events.linear_regex import PatternError, compile_user_pattern
from events.model import Expect
from events.subjects import SUBJECT_TOKEN, is_reserved_goal_id, is_subject_token
from events.untrusted_json import decode_json, object_fields

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

    tool: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    args: dict[str, Any] = {}
    id: Annotated[str, msgspec.Meta(pattern=_ID_PATTERN)] | None = None
    depends_on: tuple[Annotated[str, msgspec.Meta(pattern=_ID_PATTERN)], ...] | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None
    # Untrusted tools (from MCP servers) this step may call: its own tool must be listed here.
    allowed_tools: Annotated[
        tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=200)], ...],
        msgspec.Meta(max_length=50),
    ] = ()

    def __post_init__(self) -> None:
        _check_token("steps[].id", self.id)
        for dependency in self.depends_on or ():
            _check_token("steps[].depends_on", dependency)


class ForkCommand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Start from the state of goal ``goal_id`` as of its event at stream sequence ``at_seq``."""

    goal_id: Annotated[str, msgspec.Meta(pattern=_ID_PATTERN)]
    at_seq: Annotated[int, msgspec.Meta(ge=1)]

    def __post_init__(self) -> None:
        _check_token("forked_from.goal_id", self.goal_id)


class ExpectCommand(Expect, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``expect`` as a client sends it: strict, so a misspelt check is rejected, not ignored."""

    def __post_init__(self) -> None:
        if self.matches is not None:
            try:
                compile_user_pattern(self.matches)
            except PatternError as exc:
                raise ValueError(f"expect.matches is not a pattern agora can run: {exc}") from None


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
    # Untrusted tools (from MCP servers) the goal's tasks may call: any step, and any task
    # the model plans, may use these; nothing else untrusted.
    allowed_tools: Annotated[
        tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=200)], ...],
        msgspec.Meta(max_length=50),
    ] = ()
    # Tools whose calls wait for a person's approval in this goal (docs/approvals.md).
    approval: GoalApproval | None = None
    # Among goals waiting for the same flow key, a higher priority starts first (docs/flow.md).
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    # What a message for the goal does while it runs (agora.intake.message).
    on_message: MessagePolicy = "reject"

    def __post_init__(self) -> None:
        _check_token("goal_id", self.goal_id)


def _check_token(field: str, value: str | None) -> None:
    # The schema's pattern says this as well; Python's ``$`` alone lets a final newline in.
    if value is not None and not is_subject_token(value):
        raise ValueError(f"{field} {value!r} must be 1-128 letters, digits, '-' or '_'")


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
        raw = decode_json(_json_decoder, data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return _reject_undecodable(data, exc, fallback_command_id, max_bytes)
    if not isinstance(raw, dict):
        raise DecodeError(f"intake command must be a JSON object, got {type(raw).__name__}")

    command_id = _command_id(raw.get("command_id"), fallback_command_id)
    goal_id = raw.get("goal_id")
    reserved = isinstance(goal_id, str) and is_reserved_goal_id(goal_id)
    goal_id = _goal_id(goal_id, command_id)
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


def _reject_undecodable(
    data: bytes, error: Exception, fallback_command_id: str, max_bytes: int
) -> RejectedGoal:
    """A JSON object msgspec cannot take (too deep, a number out of range, a lone surrogate)
    is still the submitter's goal: rejected on it. Anything else has no goal to blame."""
    if len(data) > max_bytes:
        # Too large to read further on the event loop; the size alone is reason enough.
        fields: dict[str, Any] | None = {} if data.lstrip().startswith(b"{") else None
        reason = f"command is {len(data)} bytes; the limit is {max_bytes} bytes"
    else:
        fields = object_fields(data, ("command_id", "goal_id", "text"))
        reason = f"the command is a JSON object agora cannot read: {error}"
    if fields is None:
        raise DecodeError(f"intake command is not valid UTF-8 JSON: {error}") from error
    command_id = _command_id(fields.get("command_id"), fallback_command_id)
    goal_id = fields.get("goal_id")
    if isinstance(goal_id, str) and is_reserved_goal_id(goal_id):
        goal_id = None
    text = fields.get("text", "")
    return RejectedGoal(
        command_id=command_id,
        goal_id=_goal_id(goal_id, command_id),
        reason=reason,
        text=text[:500] if isinstance(text, str) else "",
    )


def _command_id(value: object, fallback: str) -> str:
    return value if isinstance(value, str) and value else fallback


def _goal_id(value: object, command_id: str) -> str:
    """The goal a command names, when it is one subject token; else the one its id derives.

    The rejection of a bad goal_id lands there (what the client would have got without a
    goal_id): never on a subject that is not the client's.
    """
    if isinstance(value, str) and is_subject_token(value) and not is_reserved_goal_id(value):
        return value
    return goal_id_for_command(command_id)
