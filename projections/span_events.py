"""What a trace reads of each event, and nothing more: a lean decoding of the log for spans.

Decoding every event into the catalogue's classes (``events.codec``) builds everything an event
holds: a plan's task specifications and arguments, an evaluation request's task outcomes, an
outcome's output. Spans need a few fields of a few types, so the trace follower decodes the
stream's bytes into the structs below instead: the envelope, and for the types spans are built
from, only the fields they read (``projections.lean_spans``). msgspec skips every other field
without building it.

Each field here is the catalogue's field of the same name, with the same type and default
(a unit test holds them to it), so an event reads the same either way; every other type of
the catalogue decodes to its envelope alone, and so does an event of a type the catalogue lacks
(a newer producer's). Any other payload the catalogue cannot decode is refused here too
(``DecodeError``). No upcaster exists yet; the day one does, this reading must apply
it as well (a unit test says so).
"""

from __future__ import annotations

import functools
import operator
from datetime import datetime
from typing import Any

import msgspec

from events.catalog import EVENT_TYPES, Verdict
from events.errors import DecodeError

__all__ = [
    "LeanApprovalDenied",
    "LeanApprovalGranted",
    "LeanApprovalRequested",
    "LeanContextProvided",
    "LeanContextRequested",
    "LeanEvaluationCompleted",
    "LeanEvaluationRequested",
    "LeanEvent",
    "LeanGoalAccepted",
    "LeanGoalCancelled",
    "LeanGoalCompleted",
    "LeanGoalFailed",
    "LeanGoalRejected",
    "LeanLlmRequested",
    "LeanLlmResponded",
    "LeanPlanCreated",
    "LeanPlanRevised",
    "LeanTaskCancelled",
    "LeanTaskCompleted",
    "LeanTaskFailed",
    "LeanTaskScheduled",
    "LeanTaskStarted",
    "LeanTimerFired",
    "LeanTimerStarted",
    "LeanToolCalled",
    "LeanToolFailed",
    "LeanToolRefused",
    "LeanToolReturned",
    "decode_span_event",
]


class LeanEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """The envelope: what every event is read for (its goal, its place in time, its cause).

    Not tracked by the garbage collector (``gc=False``): a lean event holds strings, numbers,
    times and undecoded bytes, never a reference back, so it can be in no cycle; the follower
    holds thousands of them, which the collector would otherwise walk."""

    event_id: str
    goal_id: str
    occurred_at: datetime
    causation_id: str | None
    producer: str


class LeanGoalAccepted(LeanEvent, frozen=True, kw_only=True, tag="goal_accepted"):
    traceparent: str | None = None


class LeanGoalRejected(LeanEvent, frozen=True, kw_only=True, tag="goal_rejected"):
    reason: str
    traceparent: str | None = None


class LeanGoalCompleted(LeanEvent, frozen=True, kw_only=True, tag="goal_completed"):
    score: float


class LeanGoalFailed(LeanEvent, frozen=True, kw_only=True, tag="goal_failed"):
    reason: str
    score: float | None = None


class LeanGoalCancelled(LeanEvent, frozen=True, kw_only=True, tag="goal_cancelled"):
    reason: str = ""


class LeanContextRequested(LeanEvent, frozen=True, kw_only=True, tag="context_requested"):
    pass


class LeanContextProvided(LeanEvent, frozen=True, kw_only=True, tag="context_provided"):
    request_id: str
    # Spans count the items recalled: each is left undecoded.
    items: tuple[msgspec.Raw, ...] = ()


class LeanPlanCreated(LeanEvent, frozen=True, kw_only=True, tag="plan_created"):
    iteration: int
    strategy: str


class LeanPlanRevised(LeanEvent, frozen=True, kw_only=True, tag="plan_revised"):
    iteration: int
    strategy: str


class LeanTaskScheduled(LeanEvent, frozen=True, kw_only=True, tag="task_scheduled"):
    iteration: int
    task_id: str
    tool: str


class LeanTaskStarted(LeanEvent, frozen=True, kw_only=True, tag="task_started"):
    iteration: int
    task_id: str


class LeanToolCalled(LeanEvent, frozen=True, kw_only=True, tag="tool_called"):
    iteration: int
    task_id: str
    tool: str
    attempt: int
    step: int = 0
    call: int = 0


class LeanToolReturned(LeanEvent, frozen=True, kw_only=True, tag="tool_returned"):
    iteration: int
    task_id: str
    attempt: int
    duration_ms: float
    step: int = 0
    call: int = 0


class LeanToolFailed(LeanEvent, frozen=True, kw_only=True, tag="tool_failed"):
    iteration: int
    task_id: str
    attempt: int
    error: str
    duration_ms: float
    step: int = 0
    call: int = 0
    called_at: datetime | None = None


class LeanToolRefused(LeanEvent, frozen=True, kw_only=True, tag="tool_refused"):
    iteration: int
    task_id: str
    tool: str
    reason: str


class LeanTimerStarted(LeanEvent, frozen=True, kw_only=True, tag="timer_started"):
    iteration: int
    task_id: str
    attempt: int
    purpose: str = "sleep"
    step: int = 0
    call: int = 0


class LeanTimerFired(LeanEvent, frozen=True, kw_only=True, tag="timer_fired"):
    iteration: int
    task_id: str
    attempt: int
    step: int = 0
    call: int = 0


class LeanTaskCompleted(LeanEvent, frozen=True, kw_only=True, tag="task_completed"):
    iteration: int
    task_id: str
    attempts: int
    duration_ms: float
    attempt_duration_ms: float | None = None
    called_at: datetime | None = None


class LeanTaskFailed(LeanEvent, frozen=True, kw_only=True, tag="task_failed"):
    iteration: int
    task_id: str
    error: str
    attempts: int
    duration_ms: float


class LeanTaskCancelled(LeanEvent, frozen=True, kw_only=True, tag="task_cancelled"):
    iteration: int
    task_id: str
    attempts: int
    duration_ms: float
    reason: str = ""


class LeanLlmRequested(LeanEvent, frozen=True, kw_only=True, tag="llm_requested"):
    model: str
    request_hash: str
    purpose: str


class LeanLlmResponded(LeanEvent, frozen=True, kw_only=True, tag="llm_responded"):
    provider: str
    model: str
    request_hash: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    finish_reason: str = ""
    request_model: str = ""


class LeanEvaluationRequested(LeanEvent, frozen=True, kw_only=True, tag="evaluation_requested"):
    iteration: int


class LeanEvaluationCompleted(LeanEvent, frozen=True, kw_only=True, tag="evaluation_completed"):
    iteration: int
    verdict: Verdict
    score: float


class LeanApprovalRequested(LeanEvent, frozen=True, kw_only=True, tag="approval_requested"):
    approval_id: str
    iteration: int
    task_id: str
    tool: str
    reason: str


class LeanApprovalGranted(LeanEvent, frozen=True, kw_only=True, tag="approval_granted"):
    approval_id: str
    by: str = ""


class LeanApprovalDenied(LeanEvent, frozen=True, kw_only=True, tag="approval_denied"):
    approval_id: str
    reason: str
    by: str = ""


_READ: tuple[type[LeanEvent], ...] = (
    LeanGoalAccepted,
    LeanGoalRejected,
    LeanGoalCompleted,
    LeanGoalFailed,
    LeanGoalCancelled,
    LeanContextRequested,
    LeanContextProvided,
    LeanPlanCreated,
    LeanPlanRevised,
    LeanTaskScheduled,
    LeanTaskStarted,
    LeanToolCalled,
    LeanToolReturned,
    LeanToolFailed,
    LeanToolRefused,
    LeanTimerStarted,
    LeanTimerFired,
    LeanTaskCompleted,
    LeanTaskFailed,
    LeanTaskCancelled,
    LeanLlmRequested,
    LeanLlmResponded,
    LeanEvaluationRequested,
    LeanEvaluationCompleted,
    LeanApprovalRequested,
    LeanApprovalGranted,
    LeanApprovalDenied,
)
_READ_TAGS = {cls.__struct_config__.tag for cls in _READ}
# Every other type of the catalogue: its envelope alone (a span never reads more of it).
_ENVELOPES = tuple(
    msgspec.defstruct(f"Lean_{tag}", [], bases=(LeanEvent,), tag=tag, frozen=True, kw_only=True)
    for tag in EVENT_TYPES
    if tag not in _READ_TAGS
)
_LEAN_UNION: Any = functools.reduce(operator.or_, (*_READ, *_ENVELOPES))
_decoder: msgspec.json.Decoder[LeanEvent] = msgspec.json.Decoder(_LEAN_UNION)


class _Unknown(msgspec.Struct, frozen=True, kw_only=True):
    """An event as far as every event is known: its type and envelope."""

    type: str
    event_id: str
    goal_id: str
    occurred_at: datetime
    causation_id: str | None
    producer: str


_unknown_decoder = msgspec.json.Decoder(_Unknown)


def decode_span_event(data: bytes) -> LeanEvent:
    """The event in ``data``, as spans read it. An event of a type this version does not know
    (a newer producer's) reads as its envelope, which no span is built from: a tolerant
    reader, so a newer producer does not stop the trace follower's lean reading."""
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        unknown = _newer(data)
        if unknown is None:
            raise DecodeError(f"not a valid agora event: {exc}") from exc
        return unknown
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(f"not a valid agora event: {exc}") from exc


def _newer(data: bytes) -> LeanEvent | None:
    """The envelope of an event whose type the catalogue lacks (None: it is no such event)."""
    try:
        event = _unknown_decoder.decode(data)
    except msgspec.ValidationError:
        return None
    if event.type in EVENT_TYPES:
        return None  # a known type that does not validate: refused, as the catalogue does
    return LeanEvent(
        event_id=event.event_id,
        goal_id=event.goal_id,
        occurred_at=event.occurred_at,
        causation_id=event.causation_id,
        producer=event.producer,
    )
