"""Redrive: a dead letter handed back to the one consumer that gave up on it.

A dead letter is not re-published onto its original stream. For ``AGORA_EVENTS`` that would
store a second copy of an event (same ``event_id``) in the system of record, and every other
consumer of that type, and the projector, would take it again. Instead ``agora dlq redrive``
stores a copy of the original bytes and headers on ``agora.dlq.redrive.<consumer>.<record>``
in ``AGORA_DLQ``; each service consumes its own redrive subject through a durable consumer
``redrive-<consumer>`` and hands the copy to the handler that failed, with the original
subject restored. The copy carries ``Agora-Original-Stream``, ``Agora-Original-Subject`` and
``Agora-Original-Msg-Id`` (the handler sees the original ``Nats-Msg-Id`` again), and
``Agora-Original-Deliveries`` (the handler sees a redelivery, never a first delivery).

The copy is published with ``Nats-Expected-Last-Subject-Sequence: 0`` on a subject of its own
per record, so the server itself makes a second redrive of the same record fail: redrive
happens at most once per record, whatever the duplicate window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from events.subjects import DLQ_STREAM
from infra.bus.consume import Delivery, Handler, OrderingKey
from infra.bus.streams import ConsumerSpec

if TYPE_CHECKING:
    from infra.platform.runner import Subscription

__all__ = [
    "ORIGINAL_DELIVERIES",
    "ORIGINAL_MSG_ID",
    "ORIGINAL_STREAM",
    "ORIGINAL_SUBJECT",
    "REDRIVE_OF",
    "REDRIVE_PREFIX",
    "redrive_consumer",
    "redrive_subject",
    "redrive_subscriptions",
    "redriven_consumer",
]

REDRIVE_PREFIX = "agora.dlq.redrive"
ORIGINAL_DELIVERIES = "Agora-Original-Deliveries"
ORIGINAL_MSG_ID = "Agora-Original-Msg-Id"
ORIGINAL_STREAM = "Agora-Original-Stream"
ORIGINAL_SUBJECT = "Agora-Original-Subject"
REDRIVE_OF = "Agora-Redrive-Of"
# A redrive is a rare, manual act: a few at a time are plenty.
REDRIVE_CONCURRENCY = 16


def redrive_subject(consumer: str, record_seq: int) -> str:
    return f"{REDRIVE_PREFIX}.{consumer}.{record_seq}"


def redrive_consumer(durable: str) -> str:
    """The durable consumer (on AGORA_DLQ) through which ``durable`` takes its redrives."""
    return f"redrive-{durable}"


def redriven_consumer(consumer: str) -> str:
    """The service consumer a dead letter of ``consumer`` goes back to (a failed redrive's
    own dead letter goes back to the same one)."""
    return consumer.removeprefix("redrive-")


def _original(delivery: Delivery) -> Delivery:
    """The delivery as the failed handler sees a redelivery: its subject, its message id, and
    a delivery count that goes on from the original's. A redrive is never a first delivery:
    handlers that skip reading the log on a first delivery (the executor) must read it here,
    or they would redo steps already recorded."""
    headers = dict(delivery.headers)
    if ORIGINAL_MSG_ID in headers:
        headers["Nats-Msg-Id"] = headers[ORIGINAL_MSG_ID]
    try:
        before = max(1, int(headers.get(ORIGINAL_DELIVERIES, "1")))
    except ValueError:
        before = 1
    return dataclasses.replace(
        delivery,
        subject=headers.get(ORIGINAL_SUBJECT, delivery.subject),
        headers=headers,
        num_delivered=before + delivery.num_delivered,
    )


def redrive_subscriptions(subscriptions: Sequence[Subscription]) -> list[Subscription]:
    """One redrive subscription per durable name, routing each copy to the handler of its
    original stream (the planner has one durable on two streams)."""
    from infra.platform.runner import Subscription

    by_durable: dict[str, dict[str, Subscription]] = {}
    for sub in subscriptions:
        by_durable.setdefault(sub.spec.durable, {})[sub.spec.stream] = sub
    redrives = []
    for durable, by_stream in by_durable.items():
        redrives.append(
            Subscription(
                ConsumerSpec(
                    DLQ_STREAM,
                    redrive_consumer(durable),
                    (f"{REDRIVE_PREFIX}.{durable}.*",),
                    f"{durable}: dead letters redriven by `agora dlq redrive`",
                ),
                _routed_handler(durable, by_stream),
                REDRIVE_CONCURRENCY,
                _routed_ordering(by_stream),
            )
        )
    return redrives


def _route(by_stream: dict[str, Subscription], delivery: Delivery) -> Subscription | None:
    return by_stream.get(delivery.headers.get(ORIGINAL_STREAM, ""))


def _routed_handler(durable: str, by_stream: dict[str, Subscription]) -> Handler:
    async def handle(delivery: Delivery) -> None:
        sub = _route(by_stream, delivery)
        if sub is None:
            stream = delivery.headers.get(ORIGINAL_STREAM)
            # Raised every time: after max deliveries it is a dead letter again, with this.
            raise LookupError(f"{durable} consumes nothing from stream {stream!r}")
        await sub.handler(_original(delivery))

    return handle


def _routed_ordering(by_stream: dict[str, Subscription]) -> OrderingKey:
    def key(delivery: Delivery) -> Hashable | None:
        sub = _route(by_stream, delivery)
        return None if sub is None else sub.ordering_key(_original(delivery))

    return key
