"""The pure parts of dead-letter handling: durations, copies' headers, routing, rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.subjects import DLQ_STREAM, EVENTS_STREAM, INTAKE_STREAM
from infra.bus.consume import Delivery
from infra.bus.dlq import DeadLetter
from infra.bus.redrive import (
    ORIGINAL_DELIVERIES,
    ORIGINAL_MSG_ID,
    ORIGINAL_STREAM,
    ORIGINAL_SUBJECT,
    REDRIVE_OF,
    redrive_subscriptions,
    redriven_consumer,
)
from infra.clients.dead_letters import (
    DeadLetterError,
    _copy_headers,
    hexdump,
    parse_duration,
    printable,
)
from infra.platform.runner import Subscription
from infra.platform.topology import consumers_for


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        (" 7d ", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "7 days", "-1d", "1y", "soon"])
def test_a_bad_duration_says_what_a_good_one_looks_like(text: str) -> None:
    with pytest.raises(DeadLetterError, match=r"e\.g\. 30s, 15m, 12h, 7d, 2w"):
        parse_duration(text)


def _letter(**overrides: object) -> DeadLetter:
    fields: dict[str, object] = {
        "id": "AGORA_EVENTS-5-executor",
        "stream": EVENTS_STREAM,
        "stream_seq": 5,
        "subject": "agora.events.g-1.task_scheduled",
        "consumer": "executor",
        "reason": "max_deliveries",
        "error": "RuntimeError: x",
        "deliveries": 8,
        "headers": {
            "Nats-Msg-Id": "e-1",
            "Nats-Expected-Stream": EVENTS_STREAM,
            "Nats-Expected-Last-Subject-Sequence": "0",
            "X-Trace": "t-1",
        },
        "data_b64": "",
        "data_truncated": False,
        "size": 0,
        "recorded_at": datetime(2026, 11, 22, tzinfo=UTC),
    }
    return DeadLetter(**(fields | overrides))  # type: ignore[arg-type]


def test_a_copy_drops_the_original_publish_guards_and_keeps_its_id_and_origin() -> None:
    headers = _copy_headers(_letter(), 42)
    assert headers == {
        "X-Trace": "t-1",
        ORIGINAL_MSG_ID: "e-1",
        ORIGINAL_STREAM: EVENTS_STREAM,
        ORIGINAL_SUBJECT: "agora.events.g-1.task_scheduled",
        REDRIVE_OF: "42",
        ORIGINAL_DELIVERIES: "8",
        "Nats-Msg-Id": "redrive-42",
        "Nats-Expected-Stream": DLQ_STREAM,
        "Nats-Expected-Last-Subject-Sequence": "0",
    }


def test_a_copy_of_a_failed_redrive_points_at_the_first_origin() -> None:
    first = _copy_headers(_letter(), 42)
    again = _letter(
        stream=DLQ_STREAM,
        stream_seq=43,
        subject="agora.dlq.redrive.executor.42",
        consumer="redrive-executor",
        headers=first,
    )
    headers = _copy_headers(again, 44)
    assert headers[ORIGINAL_STREAM] == EVENTS_STREAM
    assert headers[ORIGINAL_SUBJECT] == "agora.events.g-1.task_scheduled"
    assert headers[ORIGINAL_MSG_ID] == "e-1"
    assert headers[REDRIVE_OF] == "44"
    assert headers[ORIGINAL_DELIVERIES] == "16"  # 8 of the original, 8 of the failed redrive
    assert redriven_consumer(again.consumer) == "executor"


def _delivery(headers: dict[str, str]) -> Delivery:
    return Delivery(
        reply="$JS.ACK.AGORA_EVENTS.executor.1.1.1.1700000000000000000.0",
        subject="agora.dlq.redrive.planner.9",
        data=b"{}",
        headers=headers,
        stream_seq=10,
        num_delivered=1,
    )


async def test_a_redrive_reaches_the_handler_of_its_original_stream_as_first_seen() -> None:
    seen: list[tuple[str, Delivery]] = []

    def recorder(name: str):  # type: ignore[no-untyped-def]
        async def handle(delivery: Delivery) -> None:
            seen.append((name, delivery))

        return handle

    intake, events = consumers_for("planner")
    subs = [
        Subscription(intake, recorder("intake"), 4),
        Subscription(events, recorder("events"), 4, ordering_key=lambda d: d.subject),
    ]
    [redrive] = redrive_subscriptions(subs)
    assert (redrive.spec.stream, redrive.spec.durable) == (DLQ_STREAM, "redrive-planner")
    assert redrive.spec.filter_subjects == ("agora.dlq.redrive.planner.*",)

    copy = _delivery(
        {
            ORIGINAL_STREAM: EVENTS_STREAM,
            ORIGINAL_SUBJECT: "agora.events.g-1.task_completed",
            ORIGINAL_MSG_ID: "e-7",
            ORIGINAL_DELIVERIES: "8",
            "Nats-Msg-Id": "redrive-9",
        }
    )
    await redrive.handler(copy)
    [(name, delivery)] = seen
    assert name == "events"
    assert delivery.subject == "agora.events.g-1.task_completed"
    assert delivery.headers["Nats-Msg-Id"] == "e-7"
    assert (delivery.num_delivered, delivery.redelivered) == (9, True)
    await redrive.handler(_delivery({ORIGINAL_STREAM: EVENTS_STREAM}))
    assert seen[-1][1].redelivered  # even without the header: a redrive is never a first
    assert redrive.ordering_key(copy) == "agora.events.g-1.task_completed"

    with pytest.raises(LookupError, match="consumes nothing from stream 'AGORA_ELSEWHERE'"):
        await redrive.handler(_delivery({ORIGINAL_STREAM: "AGORA_ELSEWHERE"}))
    assert redrive.ordering_key(_delivery({ORIGINAL_STREAM: INTAKE_STREAM})) is None


def test_bytes_render_as_text_only_when_they_are_text() -> None:
    assert printable(b'{"text": "hi"}\n') == '{"text": "hi"}\n'
    assert printable(b"\xff\xfe") is None
    assert printable(b"a\x00b") is None


def test_hexdump_shows_offsets_bytes_and_ascii() -> None:
    lines = hexdump(bytes(range(0x41, 0x41 + 20)))
    assert lines == [
        "00000000  41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  |ABCDEFGHIJKLMNOP|",
        "00000010  51 52 53 54                                      |QRST|",
    ]
    assert hexdump(b"\x00" * 40, limit=16)[-1] == "… 24 more byte(s): see the base64 below"
