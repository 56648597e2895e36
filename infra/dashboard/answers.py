"""An approval answer posted by the dashboard's page, checked before it is sent: pure, bytes in,
an :class:`ApprovalAnswer` out (or :class:`BadAnswerError` saying what is wrong). The planner
still decides: an unknown id, an answered call or arguments the tool refuses are its
``approval_rejected``, with the reason."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from events.catalog import ApprovalDecision
from events.errors import AgoraError

__all__ = ["MAX_ANSWER_BYTES", "ApprovalAnswer", "BadAnswerError", "parse_answer"]

MAX_ANSWER_BYTES = 64 * 1024
_MAX_ID_CHARS = 300
_MAX_TEXT_CHARS = 2000
_FIELDS = frozenset({"approval_id", "decision", "args", "reason", "by"})


class BadAnswerError(AgoraError):
    """An approval answer the dashboard cannot send; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class ApprovalAnswer:
    approval_id: str
    decision: ApprovalDecision
    args: dict[str, Any] | None
    reason: str
    by: str


def parse_answer(body: bytes) -> ApprovalAnswer:
    if len(body) > MAX_ANSWER_BYTES:
        raise BadAnswerError(f"an answer is at most {MAX_ANSWER_BYTES // 1024} KiB")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadAnswerError("the answer is not JSON") from None
    if not isinstance(value, dict):
        raise BadAnswerError("the answer must be a JSON object")
    unknown = sorted(set(value) - _FIELDS)
    if unknown:
        raise BadAnswerError(f"unknown field(s): {', '.join(unknown)}")
    approval_id = _text(value, "approval_id", _MAX_ID_CHARS)
    if not approval_id:
        raise BadAnswerError("approval_id names the call to answer")
    decision = value.get("decision")
    if decision not in ("approve", "deny"):
        raise BadAnswerError("decision is approve or deny")
    args = value.get("args")
    if args is not None and not isinstance(args, dict):
        raise BadAnswerError("args, the edited arguments, must be a JSON object")
    reason = _text(value, "reason", _MAX_TEXT_CHARS)
    if decision == "deny":
        if args is not None:
            raise BadAnswerError("a denial carries no arguments")
        if not reason.strip():
            raise BadAnswerError("a denial needs a reason: the task fails with it")
    return ApprovalAnswer(
        approval_id=approval_id,
        decision="approve" if decision == "approve" else "deny",
        args=args,
        reason=reason,
        by=_text(value, "by", _MAX_ID_CHARS),
    )


def _text(value: dict[str, Any], name: str, limit: int) -> str:
    raw = value.get(name, "")
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise BadAnswerError(f"{name} must be a string")
    if len(raw) > limit:
        raise BadAnswerError(f"{name} is at most {limit} characters")
    return raw
