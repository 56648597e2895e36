"""OpenTelemetry metrics derived from the log: what each event adds to which instrument.

Pure: an event (or a consumer's state, read by ``infra.metrics``) in, measurements out; no
SDK, no clock, no I/O. The instruments follow the OpenTelemetry semantic conventions
**v1.41.0**, GenAI (status Development), the same version as the traces (``projections.spans``):

- ``gen_ai.client.token.usage`` (histogram, ``{token}``): each ``llm_responded``, once per
  ``gen_ai.token.type`` (``input``, ``output``), with ``gen_ai.operation.name`` (``chat``),
  ``gen_ai.provider.name``, ``gen_ai.request.model`` and ``gen_ai.response.model``;
- ``gen_ai.client.operation.duration`` (histogram, ``s``): each ``llm_responded``'s recorded
  latency, with the same attributes but the token type;
- ``agora.goals.accepted`` (counter, ``{goal}``): each ``goal_accepted``;
- ``agora.goals.finished`` (counter, ``{goal}``): each ``goal_completed``, ``goal_failed``,
  ``goal_rejected`` and ``goal_cancelled``, by ``agora.goal.status``;
- ``agora.consumer.pending``, ``agora.consumer.ack_pending``, ``agora.consumer.lag`` (gauges,
  ``{message}``): a sample of each service's durable consumer, by
  ``messaging.consumer.group.name`` (the durable's name) and ``agora.stream``.

The histograms' bucket boundaries are the ones the conventions advise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from events.catalog import (
    GoalAccepted,
    GoalCancelled,
    GoalCompleted,
    GoalFailed,
    GoalRejected,
    LlmResponded,
)
from events.model import Event
from projections.spans import (
    CONVENTION_VERSION,
    GOAL_STATUS,
    OPERATION,
    PROVIDER,
    REQUEST_MODEL,
    RESPONSE_MODEL,
)
from services.manifest import event_tag

__all__ = [
    "CONSUMER_ACK_PENDING",
    "CONSUMER_LAG",
    "CONSUMER_PENDING",
    "CONVENTION_VERSION",
    "GOALS_ACCEPTED",
    "GOALS_FINISHED",
    "INSTRUMENTS",
    "MEASURED_TYPES",
    "OPERATION_DURATION",
    "TOKEN_USAGE",
    "ConsumerState",
    "Instrument",
    "Measurement",
    "consumer_measurements",
    "event_measurements",
]

TOKEN_USAGE = "gen_ai.client.token.usage"  # noqa: S105  a metric's name
OPERATION_DURATION = "gen_ai.client.operation.duration"
GOALS_ACCEPTED = "agora.goals.accepted"
GOALS_FINISHED = "agora.goals.finished"
CONSUMER_PENDING = "agora.consumer.pending"
CONSUMER_ACK_PENDING = "agora.consumer.ack_pending"
CONSUMER_LAG = "agora.consumer.lag"

TOKEN_TYPE = "gen_ai.token.type"  # noqa: S105  an attribute's name
CONSUMER_GROUP = "messaging.consumer.group.name"
STREAM = "agora.stream"

InstrumentKind = Literal["histogram", "counter", "gauge"]
Attributes = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Instrument:
    name: str
    kind: InstrumentKind
    unit: str
    description: str
    buckets: tuple[float, ...] = ()


# The conventions' advice for the explicit bucket boundaries of the two GenAI histograms.
_TOKEN_BUCKETS = tuple(float(4**n) for n in range(14))  # 1, 4, 16, … 67,108,864
_DURATION_BUCKETS = tuple(round(0.01 * 2**n, 2) for n in range(14))  # 0.01, 0.02, … 81.92

INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(
        TOKEN_USAGE,
        "histogram",
        "{token}",
        "Number of input and output tokens used.",
        _TOKEN_BUCKETS,
    ),
    Instrument(
        OPERATION_DURATION, "histogram", "s", "GenAI operation duration.", _DURATION_BUCKETS
    ),
    Instrument(GOALS_ACCEPTED, "counter", "{goal}", "Goals accepted by the planner."),
    Instrument(GOALS_FINISHED, "counter", "{goal}", "Goals that ended, by how they ended."),
    Instrument(
        CONSUMER_PENDING,
        "gauge",
        "{message}",
        "Messages waiting for a service's durable consumer, not yet delivered (its queue depth).",
    ),
    Instrument(
        CONSUMER_ACK_PENDING,
        "gauge",
        "{message}",
        "Messages delivered to a service's durable consumer and not yet acknowledged.",
    ),
    Instrument(
        CONSUMER_LAG,
        "gauge",
        "{message}",
        "Messages a service's durable consumer has not finished: pending plus unacknowledged.",
    ),
)

_ENDINGS: Mapping[type[Event], str] = {
    GoalCompleted: "completed",
    GoalFailed: "failed",
    GoalRejected: "rejected",
    GoalCancelled: "cancelled",
}
# The event types any measurement comes from: a follower reads only these from the stream.
_MEASURED: tuple[type[Event], ...] = (LlmResponded, GoalAccepted, *_ENDINGS)
MEASURED_TYPES: tuple[str, ...] = tuple(event_tag(cls) for cls in _MEASURED)


@dataclass(frozen=True, slots=True)
class Measurement:
    instrument: str
    value: float
    attributes: Attributes = ()


@dataclass(frozen=True, slots=True)
class ConsumerState:
    """What JetStream reports of one durable consumer at one moment."""

    stream: str
    consumer: str
    pending: int
    ack_pending: int


def _model_call(event: LlmResponded) -> Attributes:
    return (
        (OPERATION, "chat"),
        (PROVIDER, event.provider or "unknown"),
        (REQUEST_MODEL, event.request_model or event.model or "unknown"),
        (RESPONSE_MODEL, event.model or "unknown"),
    )


def event_measurements(event: Event) -> tuple[Measurement, ...]:
    """What ``event`` adds to the instruments (nothing for most types)."""
    if isinstance(event, LlmResponded):
        call = _model_call(event)
        return (
            Measurement(TOKEN_USAGE, event.tokens_in, (*call, (TOKEN_TYPE, "input"))),
            Measurement(TOKEN_USAGE, event.tokens_out, (*call, (TOKEN_TYPE, "output"))),
            Measurement(OPERATION_DURATION, event.latency_ms / 1000, call),
        )
    if isinstance(event, GoalAccepted):
        return (Measurement(GOALS_ACCEPTED, 1),)
    status = _ENDINGS.get(type(event))
    if status is not None:
        return (Measurement(GOALS_FINISHED, 1, ((GOAL_STATUS, status),)),)
    return ()


def consumer_measurements(state: ConsumerState) -> tuple[Measurement, ...]:
    """A consumer's queue depth, unacknowledged messages and lag, as gauge values."""
    which = ((CONSUMER_GROUP, state.consumer), (STREAM, state.stream))
    return (
        Measurement(CONSUMER_PENDING, state.pending, which),
        Measurement(CONSUMER_ACK_PENDING, state.ack_pending, which),
        Measurement(CONSUMER_LAG, state.pending + state.ack_pending, which),
    )
