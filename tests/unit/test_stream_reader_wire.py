"""The NATS frame parser: given bytes from a server -> when parsed -> then deliveries and frames."""

from __future__ import annotations

import pytest

from infra.bus.frames import (
    PING,
    PONG,
    FrameParser,
    ProtocolError,
    ServerError,
    ServerInfo,
    Status,
    connect_line,
    publish_line,
    reply_position,
)

INBOX = "_INBOX.reader"


def ack(seq: int, ts: int = 0, pending: int = 0) -> bytes:
    stored_at = ts or 1_700_000_000_000_000_000 + seq
    return f"$JS.ACK.EVENTS.c1.1.{seq}.{seq}.{stored_at}.{pending}".encode()


def hmsg(
    payload: bytes, reply: bytes, headers: bytes = b"NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n"
) -> bytes:
    size = len(headers) + len(payload)
    return b"HMSG agora.events.g.t 1 %s %d %d\r\n%s%s\r\n" % (
        reply,
        len(headers),
        size,
        headers,
        payload,
    )


def status(code: int, text: str) -> bytes:
    headers = f"NATS/1.0 {code} {text}\r\n\r\n".encode()
    return b"HMSG %s 1 %d %d\r\n%s\r\n" % (INBOX.encode(), len(headers), len(headers), headers)


def parse_all(parser: FrameParser) -> list[object]:
    frames: list[object] = []
    while (frame := parser.parse()) is not None:
        frames.append(frame)
    return frames


TRICKY = [
    b"plain json {}",
    b"contains\r\nMSG fake 1 5\r\nhello\r\n and HMSG a 1 2 3\r\n",
    bytes(range(256)),
    b"",
    b"\r\n",
    b"NATS/1.0 404 No Messages\r\n\r\n",
]


def test_deliveries_come_out_in_order_with_sequence_timestamp_and_exact_payloads() -> None:
    parser = FrameParser()
    parser.feed(
        b"".join(hmsg(p, ack(i + 1, pending=len(TRICKY) - i - 1)) for i, p in enumerate(TRICKY))
    )

    assert parse_all(parser) == []
    got = parser.take()
    assert got.payloads == TRICKY
    assert got.seqs == list(range(1, len(TRICKY) + 1))
    assert got.timestamps_ns == [1_700_000_000_000_000_000 + s for s in got.seqs]
    assert reply_position(got.last_reply) == (len(TRICKY), got.timestamps_ns[-1], 0)
    assert parser.buffered == 0
    assert parser.take().payloads == []


def test_bytes_arriving_one_at_a_time_parse_the_same_as_all_at_once() -> None:
    stream = b"".join(hmsg(p, ack(i + 1)) for i, p in enumerate(TRICKY)) + status(
        404, "No Messages"
    )
    parser = FrameParser()
    frames: list[object] = []
    for byte in stream:
        parser.feed(bytes([byte]))
        frames += parse_all(parser)

    assert frames == [Status(404, "No Messages")]
    assert parser.take().payloads == TRICKY
    assert parser.buffered == 0


def test_a_large_payload_waits_until_complete() -> None:
    big = bytes(range(256)) * 3600  # ~900 KB
    frame = hmsg(big, ack(7))
    parser = FrameParser()
    parser.feed(frame[:-3])
    assert parser.parse() is None
    assert parser.collected == 0

    parser.feed(frame[-3:])
    assert parser.parse() is None
    assert parser.take().payloads == [big]


def test_status_messages_stop_the_parse_after_the_data_before_them() -> None:
    parser = FrameParser()
    parser.feed(
        hmsg(b"a", ack(1))
        + status(100, "Idle Heartbeat")
        + hmsg(b"b", ack(2))
        + status(409, "Consumer Deleted")
        + hmsg(b"c", ack(3))
        + status(408, "Request Timeout")
    )

    assert parser.parse() == Status(100, "Idle Heartbeat")
    assert parser.collected == 1
    assert parser.parse() == Status(409, "Consumer Deleted")
    assert parser.take().payloads == [b"a", b"b"]
    assert parser.parse() == Status(408, "Request Timeout")
    assert parser.take().seqs == [3]


def test_the_limit_leaves_later_messages_for_the_next_request() -> None:
    parser = FrameParser()
    parser.feed(hmsg(b"a", ack(1)) + hmsg(b"b", ack(2)) + status(404, "No Messages"))

    assert parser.parse(limit=1) is None
    assert parser.take().payloads == [b"a"]
    assert parser.parse(limit=1) is None
    assert parser.take().payloads == [b"b"]
    assert parser.parse(limit=1) == Status(404, "No Messages")
    assert parser.take().payloads == []


def test_control_lines_come_back_as_frames() -> None:
    parser = FrameParser()
    parser.feed(
        b'INFO {"server_id":"x","headers":true}\r\n+OK\r\nPING\r\nPONG\r\n'
        b"-ERR 'Authorization Violation'\r\n"
    )

    assert parse_all(parser) == [
        ServerInfo({"server_id": "x", "headers": True}),
        PING,
        PONG,
        ServerError("Authorization Violation"),
    ]


def test_messages_without_headers_and_v2_ack_subjects_take_the_slow_path() -> None:
    v2 = b"$JS.ACK.hub.ACCHASH.EVENTS.c1.1.42.40.1700000000000000042.3.rnd"
    parser = FrameParser()
    parser.feed(b"MSG s 1 %s 5\r\nhello\r\n" % ack(41) + hmsg(b"v2", v2))

    assert parse_all(parser) == []
    got = parser.take()
    assert got.payloads == [b"hello", b"v2"]
    assert got.seqs == [41, 42]
    assert got.timestamps_ns == [1_700_000_000_000_000_041, 1_700_000_000_000_000_042]
    assert reply_position(got.last_reply)[2] == 3


@pytest.mark.parametrize(
    "garbage",
    [
        b"HELLO world\r\n",
        b"MSG s 1 nope\r\n",
        hmsg(b"x", ack(1))[:-2] + b"XX",  # payload not followed by CRLF
        b"MSG s 1 5\r\nhello\r\n",  # a message without a JetStream reply subject
        b"x" * 70_000,  # no line end at all
    ],
)
def test_bytes_that_are_not_the_protocol_raise(garbage: bytes) -> None:
    parser = FrameParser()
    parser.feed(garbage)
    with pytest.raises(ProtocolError):
        parse_all(parser)


def test_reply_position_reads_both_ack_subject_versions() -> None:
    assert reply_position("$JS.ACK.S.c.1.10.9.123.4") == (10, 123, 4)
    assert reply_position(b"$JS.ACK.d.h.S.c.1.10.9.123.4.r") == (10, 123, 4)
    with pytest.raises(ProtocolError):
        reply_position(b"_INBOX.abc")


def test_client_lines() -> None:
    assert publish_line("$JS.API.X", INBOX, b'{"batch":5}') == (
        b'PUB $JS.API.X _INBOX.reader 11\r\n{"batch":5}\r\n'
    )
    line = connect_line("projector/stream-reader")
    assert line.startswith(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,')
    assert line.endswith(b"\r\nPING\r\n")
