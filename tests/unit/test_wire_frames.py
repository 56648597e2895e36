"""The hot-path client's protocol parsing: frames in any chunking, headers, hostile bytes."""

from __future__ import annotations

import pytest

from infra.bus.frames import (
    PING,
    PONG,
    Control,
    MessageParser,
    ProtocolError,
    ServerError,
    ServerInfo,
    header_block,
    parse_headers,
)
from infra.bus.wire import WireRefusedError, WireServer

Frame = tuple[bytes, bytes, bytes, bytes, bytes] | Control

DATA_HEADERS = b"NATS/1.0\r\nNats-Msg-Id: e\r\n\r\n"
STATUS_HEADERS = (
    b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\nNats-Pending-Bytes: 0\r\n\r\n"
)
ACK_SUBJECT = b"$JS.ACK.AGORA_EVENTS.executor.1.42.9.17.0"
STREAM = (
    b'INFO {"server_id":"x","headers":true,"max_payload":1048576}\r\n'
    b"PING\r\n"
    b"MSG agora.live.g-1 7 5\r\nhello\r\n"
    b"HMSG agora.events.g-1.task_completed 3 %s %d %d\r\n%s{}\r\n\r\n"
    % (ACK_SUBJECT, len(DATA_HEADERS), len(DATA_HEADERS) + 4, DATA_HEADERS)
    + b"HMSG _INBOX.p.1 9 %d %d\r\n%s\r\n"
    % (len(STATUS_HEADERS), len(STATUS_HEADERS), STATUS_HEADERS)
    + b"MSG _INBOX.r.4 2 _INBOX.back 0\r\n\r\n"
    b"+OK\r\n"
    b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n"
    b"PONG\r\n"
)


def parsed(chunks: list[bytes]) -> list[Frame]:
    frames: list[Frame] = []
    parser = MessageParser(lambda *message: frames.append(message), frames.append)
    for chunk in chunks:
        parser.feed(chunk)
    assert parser.buffered == 0
    return frames


def test_every_frame_arrives_in_order_with_its_parts() -> None:
    frames = parsed([STREAM])

    assert frames == [
        ServerInfo({"server_id": "x", "headers": True, "max_payload": 1048576}),
        PING,
        (b"agora.live.g-1", b"7", b"", b"", b"hello"),
        # A payload may end in CRLF itself.
        (b"agora.events.g-1.task_completed", b"3", ACK_SUBJECT, DATA_HEADERS, b"{}\r\n"),
        (b"_INBOX.p.1", b"9", b"", STATUS_HEADERS, b""),
        (b"_INBOX.r.4", b"2", b"_INBOX.back", b"", b""),
        ServerError('Permissions Violation for Publish to "x"'),
        PONG,
    ]


def test_frames_split_anywhere_parse_the_same() -> None:
    whole = parsed([STREAM])

    assert parsed([STREAM[n : n + 1] for n in range(len(STREAM))]) == whole
    for cut in range(1, len(STREAM), 7):
        assert parsed([STREAM[:cut], STREAM[cut:]]) == whole


@pytest.mark.parametrize(
    "garbage",
    [
        b"HELLO there\r\n",
        b"MSG only-a-subject\r\n",
        b"MSG s 1 5\r\nhello!!\r\n",  # the payload overruns its announced size
        b"MSG s 1 " + b"9" * 5000 + b"\r\n",  # a size no payload has
        b"HMSG s 1 30 20\r\n" + b"x" * 20 + b"\r\n",  # headers longer than the message
        b"INFO {not json}\r\n",
        b"INFO [1, 2]\r\n",
        b"MSG " + b"a" * (70 * 1024),  # a line that never ends
    ],
)
def test_bytes_that_are_not_the_protocol_are_refused(garbage: bytes) -> None:
    parser = MessageParser(lambda *_: None, lambda _: None)

    with pytest.raises(ProtocolError):
        parser.feed(garbage)


def test_headers_read_as_nats_py_presents_them() -> None:
    assert parse_headers(b"") == {}
    assert parse_headers(b"NATS/1.0\r\nNats-Msg-Id: e-1\r\nNats-Pin-Id: p\r\n\r\n") == {
        "Nats-Msg-Id": "e-1",
        "Nats-Pin-Id": "p",
    }
    assert parse_headers(b"NATS/1.0 409 Consumer Deleted\r\n\r\n") == {
        "Status": "409",
        "Description": "Consumer Deleted",
    }
    assert parse_headers(b"NATS/1.0 503\r\n\r\n") == {"Status": "503"}


def test_a_header_block_round_trips_and_refuses_line_breaks() -> None:
    block = header_block({"Nats-Msg-Id": "e-1", "Nats-Expected-Stream": "AGORA_EVENTS"})

    assert parse_headers(block) == {"Nats-Msg-Id": "e-1", "Nats-Expected-Stream": "AGORA_EVENTS"}
    with pytest.raises(ValueError, match="line break"):
        header_block({"Nats-Msg-Id": "e-1\r\nNats-Expected-Stream: OTHER"})
    with pytest.raises(ValueError, match="line break"):
        header_block({"X": "a\nb"})


def test_server_urls_carry_their_credentials() -> None:
    assert WireServer.parse("nats://127.0.0.1:4333") == WireServer("127.0.0.1", 4333)
    assert WireServer.parse("nats://u:p%40ss@h:1") == WireServer("h", 1, "u", "p@ss")
    assert WireServer.parse("nats://s3cret@h") == WireServer("h", 4222, token="s3cret")
    assert WireServer.parse("10.0.0.2:6222") == WireServer("10.0.0.2", 6222)
    with pytest.raises(WireRefusedError, match="tls"):
        WireServer.parse("tls://h:4222")
