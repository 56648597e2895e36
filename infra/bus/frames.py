"""The NATS client protocol as agora's own connections need it. Pure: bytes in, frames out.

Two parsers share the control-line handling: ``FrameParser`` for the stream reader's bulk
reads, and ``MessageParser`` for the hot-path client (infra/bus/wire.py), which hands every
message with its subject, subscription, reply subject and raw header block to a callback.

nats-py spends most of a bulk read building a ``Msg`` (and parsing its headers) per message.
The stream reader needs only two things from each JetStream message: the reply subject
(sequence, timestamp, pending) and the payload. This parser collects exactly those from
``MSG``/``HMSG`` frames in one tight loop over a buffer, and hands every other frame (PING,
status messages, errors, ...) back to its caller, in order.

Frames (https://docs.nats.io/reference/reference-protocols/nats-protocol)::

    MSG <subject> <sid> [reply] <size>\\r\\n<payload>\\r\\n
    HMSG <subject> <sid> [reply] <header size> <total size>\\r\\n<headers><payload>\\r\\n
    PING | PONG | +OK | -ERR '<message>' | INFO {json}

A header block starts ``NATS/1.0\\r\\n`` on data messages and ``NATS/1.0 <code> <text>\\r\\n``
on JetStream status messages (404 no messages, 408 request expired, 409 consumer gone or
similar, 100 heartbeat); data headers are skipped, not parsed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from events.errors import AgoraError

__all__ = [
    "PING",
    "PONG",
    "Control",
    "Deliveries",
    "FrameParser",
    "MessageParser",
    "ProtocolError",
    "ServerError",
    "ServerInfo",
    "Signal",
    "Status",
    "connect_line",
    "delivery_position",
    "header_block",
    "parse_headers",
    "plain_client_refusal",
    "publish_line",
    "reply_position",
    "sub_line",
]

# The longest control line we accept before calling the stream garbage (subjects are short).
MAX_CONTROL_LINE: Final = 64 * 1024
MAX_MESSAGES: Final = 1 << 62

_HMSG = re.compile(rb"HMSG [^ \r\n]+ [^ \r\n]+ (?:([^ \r\n]+) )?(\d+) (\d+)\r\n")
_MSG = re.compile(rb"MSG [^ \r\n]+ [^ \r\n]+ (?:([^ \r\n]+) )?(\d+)\r\n")
# The fast path: a JetStream delivery with a v1 ack subject (what nats-server 2.x sends),
# $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>; reading sequence and
# timestamp here saves splitting every reply subject again later.
_JS_DELIVERY = re.compile(
    rb"HMSG [^ \r\n]+ [^ \r\n]+ "
    rb"(\$JS\.ACK\.[^. \r\n]+\.[^. \r\n]+\.\d+\.(\d+)\.\d+\.(\d+)\.\d+) (\d+) (\d+)\r\n"
)
_STATUS_LINE = re.compile(rb"NATS/1\.0 (\d{3}) ?([^\r\n]*)\r\n")
_SPACE = 0x20
_CR = 0x0D
_CRLF = b"\r\n"


class ProtocolError(AgoraError):
    """The server sent bytes that are not the NATS protocol (or a corrupted frame)."""


@dataclass(frozen=True, slots=True)
class Status:
    """A JetStream status message, e.g. 404 "No Messages" or 409 "Consumer Deleted"."""

    code: int
    description: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """``-ERR``: the server refused something; it usually closes the connection next."""

    message: str


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """``INFO``: the server's description of itself (sent on connect, and on cluster changes)."""

    info: dict[str, object]


@dataclass(frozen=True, slots=True)
class Signal:
    """A frame without arguments: PING (answer it) or PONG."""

    op: str


PING: Final = Signal("PING")
PONG: Final = Signal("PONG")

Control = Status | ServerError | ServerInfo | Signal
# Argument-less lines; +OK (only sent in verbose mode) needs nothing from the caller.
_SIGNALS: Final[dict[bytes, Signal | None]] = {b"PING": PING, b"PONG": PONG, b"+OK": None}


@dataclass(slots=True)
class Deliveries:
    """JetStream messages in arrival order: stream sequence, stored-at time, payload."""

    seqs: list[int] = field(default_factory=list)
    timestamps_ns: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    last_reply: bytes = b""  # the newest ack subject: its pending count is the batch's


class FrameParser:
    """Incremental parser: ``feed`` bytes as they arrive, then ``parse`` until it returns None.

    Data messages must be JetStream deliveries (their reply subject is the ack subject that
    carries sequence and timestamp); they are collected until ``take``. Every other frame is
    returned, one per ``parse`` call, so the caller sees it in order after the data before it.
    """

    __slots__ = ("_buffer", "_deliveries")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._deliveries = Deliveries()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet parsed (an incomplete frame)."""
        return len(self._buffer)

    @property
    def collected(self) -> int:
        """Messages collected since the last ``take``."""
        return len(self._deliveries.payloads)

    def take(self) -> Deliveries:
        """The messages collected so far; collecting starts afresh."""
        taken, self._deliveries = self._deliveries, Deliveries()
        return taken

    def parse(self, limit: int = MAX_MESSAGES) -> Control | None:
        """Collect complete data messages; return the first other frame, or None when dry.

        Stops once ``limit`` messages are collected: what follows answers the next request.
        """
        buffer = self._buffer
        size = len(buffer)
        deliveries = self._deliveries
        seqs, timestamps, payloads = deliveries.seqs, deliveries.timestamps_ns, deliveries.payloads
        match_delivery = _JS_DELIVERY.match
        position = 0
        control: Control | None = None
        last: re.Match[bytes] | None = None
        # The memoryview lets each payload be copied exactly once, out of the buffer; it must
        # be released before the buffer is compacted below.
        with memoryview(buffer) as view:
            while control is None and len(payloads) < limit:
                frame = match_delivery(buffer, position)
                if frame is None:  # any other frame, or an incomplete line
                    if last is not None:  # keep "last reply" right if a slow-path one follows
                        deliveries.last_reply, last = bytes(last.group(1)), None
                    control, after = self._other_frame(view, position)
                    if after == position:
                        break
                    position = after
                    continue
                _, seq, timestamp, header_size, total_size = frame.groups()
                start = frame.end()
                end = start + int(total_size)
                if end + 2 > size:
                    break  # the rest of this message has not arrived yet
                # A data header block is "NATS/1.0\r\n..."; the payload is followed by CRLF.
                if buffer[start + 8] != _CR or buffer[end] != _CR:
                    raise ProtocolError(f"malformed HMSG from the server at byte {position}")
                seqs.append(int(seq))
                timestamps.append(int(timestamp))
                payloads.append(view[start + int(header_size) : end].tobytes())
                last = frame
                position = end + 2
        if last is not None:
            deliveries.last_reply = bytes(last.group(1))
        del buffer[:position]
        return control

    def _other_frame(self, view: memoryview, position: int) -> tuple[Control | None, int]:
        """Any frame the fast path does not take: (frame to hand back, position after it).

        The position comes back unchanged when the frame has not fully arrived yet.
        """
        buffer = self._buffer
        line_end = buffer.find(_CRLF, position)
        if line_end < 0:
            if len(buffer) - position > MAX_CONTROL_LINE:
                raise ProtocolError(f"no line end in {MAX_CONTROL_LINE} bytes from the server")
            return None, position
        line = bytes(buffer[position:line_end])
        if line.split(b" ", 1)[0].upper() in (b"HMSG", b"MSG"):
            return self._message(view, position, line)
        return control_line(line), line_end + 2

    def _message(self, view: memoryview, position: int, line: bytes) -> tuple[Status | None, int]:
        """A status message, or a delivery whose ack subject the fast path does not know."""
        with_headers = line.startswith(b"HMSG")
        frame = (_HMSG if with_headers else _MSG).match(line + _CRLF)
        if frame is None:
            raise ProtocolError(f"malformed message line from the server: {line[:200]!r}")
        reply, *sizes = frame.groups()
        start = position + len(line) + 2
        end = start + int(sizes[-1])
        if end + 2 > len(self._buffer):
            return None, position
        headers_end = start + int(sizes[0]) if with_headers else start
        if with_headers and self._buffer[start + 8] == _SPACE:  # "NATS/1.0 <code> <text>"
            return _status(view[start:headers_end].tobytes()), end + 2
        if not reply:
            raise ProtocolError(f"a message without a JetStream reply subject: {line[:200]!r}")
        seq, timestamp, _ = reply_position(reply)
        self._deliveries.seqs.append(seq)
        self._deliveries.timestamps_ns.append(timestamp)
        self._deliveries.payloads.append(view[headers_end:end].tobytes())
        self._deliveries.last_reply = reply
        return None, end + 2


def control_line(line: bytes) -> Control | None:
    """The frame of one protocol line other than a message (None: +OK, nothing to do)."""
    op = line.split(b" ", 1)[0].upper()
    if op in _SIGNALS:
        return _SIGNALS[op]
    if op == b"-ERR":
        return ServerError(line[4:].strip().strip(b"'").decode(errors="replace"))
    if op == b"INFO":
        try:
            info = json.loads(line[4:])
        except ValueError:
            raise ProtocolError(f"malformed INFO from the server: {line[:200]!r}") from None
        if not isinstance(info, dict):
            raise ProtocolError(f"malformed INFO from the server: {line[:200]!r}")
        return ServerInfo(info)
    raise ProtocolError(f"unexpected line from the server: {line[:200]!r}")


def delivery_position(reply: str) -> tuple[int, int]:
    """(delivery count, stream sequence) from a JetStream ack reply subject (v1 or v2)."""
    tokens = reply.split(".")
    base = 4 if len(tokens) == 9 else 6
    try:
        return int(tokens[base]), int(tokens[base + 1])
    except (IndexError, ValueError):
        raise ProtocolError(f"not a JetStream ack subject: {reply[:200]!r}") from None


def reply_position(reply: str | bytes) -> tuple[int, int, int]:
    """(stream sequence, timestamp ns, pending) from a JetStream ack reply subject.

    v1: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    v2: $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>...
    """
    tokens = (reply.encode() if isinstance(reply, str) else reply).split(b".")
    base = 5 if len(tokens) == 9 else 7
    try:
        return int(tokens[base]), int(tokens[base + 2]), int(tokens[base + 3])
    except (IndexError, ValueError):
        raise ProtocolError(f"not a JetStream ack subject: {reply[:200]!r}") from None


def _status(headers: bytes) -> Status:
    line = _STATUS_LINE.match(headers)
    if line is None:
        raise ProtocolError(f"malformed status header from the server: {headers[:200]!r}")
    return Status(int(line.group(1)), line.group(2).decode(errors="replace"))


def connect_line(
    name: str, user: str | None = None, password: str | None = None, *, token: str | None = None
) -> bytes:
    """CONNECT for a plain (no TLS) server, with a user and password or a token if given;
    headers on, so status messages arrive."""
    options: dict[str, object] = {
        "verbose": False,
        "pedantic": False,
        "headers": True,
        "no_responders": True,
        "lang": "python",
        "version": "agora",
        "protocol": 1,
        "echo": False,
        "name": name,
    }
    if user is not None:
        options.update(user=user, **{"pass": password or ""})
    if token is not None:
        options["auth_token"] = token
    return b"CONNECT " + json.dumps(options, separators=(",", ":")).encode() + b"\r\nPING\r\n"


def plain_client_refusal(info: Mapping[str, object], *, authenticated: bool) -> str | None:
    """Why a plain-protocol client (no TLS, no nkeys) cannot use the server whose INFO this is,
    or None when it can; ``authenticated``: the client has a password or token to send."""
    if info.get("tls_required"):
        return "the server says tls_required"
    if info.get("auth_required") and not authenticated:
        return "the server says auth_required and no credentials are set"
    if not info.get("headers"):
        return "the server does not support headers"
    return None


def sub_line(subject: str, sid: int) -> bytes:
    return f"SUB {subject} {sid}\r\n".encode()


def publish_line(subject: str, reply: str, payload: bytes) -> bytes:
    """PUB with a reply subject, e.g. a JetStream pull request whose messages go to ``reply``."""
    return f"PUB {subject} {reply} {len(payload)}\r\n".encode() + payload + _CRLF


# -- the hot-path client's frames ---------------------------------------------------------------

# Subject, subscription id, optional reply subject, then the sizes (HMSG: header, total),
# at most 12 digits (no payload is a terabyte; a longer number is garbage, not a size).
_HMSG_FRAME = re.compile(
    rb"HMSG ([^ \r\n]+) ([^ \r\n]+) (?:([^ \r\n]+) )?(\d{1,12}) (\d{1,12})\r\n"
)
_MSG_FRAME = re.compile(rb"MSG ([^ \r\n]+) ([^ \r\n]+) (?:([^ \r\n]+) )?(\d{1,12})\r\n")
_NO_REPLY = b""

# on_message(subject, sid, reply, header block, payload): all bytes, reply b"" if none.
OnMessage = Callable[[bytes, bytes, bytes, bytes, bytes], None]
OnControl = Callable[[Control], None]


class MessageParser:
    """Incremental parser for a client connection: every complete frame, in arrival order.

    ``feed`` hands each message to ``on_message`` and each other frame to ``on_control`` as
    soon as it is complete; an incomplete frame waits for the next ``feed``. Bytes that are not
    the protocol raise :class:`ProtocolError` (the connection is then beyond repair).
    """

    __slots__ = ("_on_control", "_on_message", "_rest")

    def __init__(self, on_message: OnMessage, on_control: OnControl) -> None:
        self._rest = b""
        self._on_message = on_message
        self._on_control = on_control

    @property
    def buffered(self) -> int:
        """Bytes received but not yet parsed (an incomplete frame)."""
        return len(self._rest)

    def feed(self, data: bytes) -> None:
        buffer = self._rest + data if self._rest else data
        self._rest = b""
        size = len(buffer)
        position = 0
        on_message = self._on_message
        while position < size:
            if buffer.startswith(b"HMSG ", position):
                frame = _HMSG_FRAME.match(buffer, position)
                with_headers = True
            elif buffer.startswith(b"MSG ", position):
                frame = _MSG_FRAME.match(buffer, position)
                with_headers = False
            else:
                line_end = buffer.find(_CRLF, position)
                if line_end < 0:
                    break
                control = control_line(buffer[position:line_end])
                position = line_end + 2
                if control is not None:
                    self._on_control(control)
                continue
            if frame is None:
                if buffer.find(_CRLF, position, position + MAX_CONTROL_LINE) >= 0:
                    line = buffer[position : buffer.find(_CRLF, position)]
                    raise ProtocolError(f"malformed message line from the server: {line[:200]!r}")
                break
            start = frame.end()
            end = start + int(frame.group(5 if with_headers else 4))
            if end + 2 > size:
                break
            if buffer[end : end + 2] != _CRLF:
                raise ProtocolError(f"a message from the server overruns its size at {position}")
            headers_end = start + int(frame.group(4)) if with_headers else start
            if headers_end > end:
                raise ProtocolError(f"a message's headers overrun the message at {position}")
            on_message(
                frame.group(1),
                frame.group(2),
                frame.group(3) or _NO_REPLY,
                buffer[start:headers_end],
                buffer[headers_end:end],
            )
            position = end + 2
        rest = buffer[position:]
        if len(rest) > MAX_CONTROL_LINE and rest.find(_CRLF) < 0:
            raise ProtocolError(f"no line end in {MAX_CONTROL_LINE} bytes from the server")
        self._rest = rest


def parse_headers(block: bytes) -> dict[str, str]:
    """A header block as nats-py presents it: a status line becomes ``Status`` (and
    ``Description``); otherwise one value per name, the last one winning."""
    if not block:
        return {}
    lines = block.decode(errors="replace").split("\r\n")
    headers: dict[str, str] = {}
    status = lines[0][9:]  # after "NATS/1.0 "
    if status:
        code, _, description = status.partition(" ")
        headers["Status"] = code
        if description:
            headers["Description"] = description.strip()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip()] = value.strip()
    return headers


def header_block(headers: Mapping[str, str]) -> bytes:
    """Headers as sent after HPUB. A name or value holding a line break would end the block
    early and turn the rest into protocol, so it is refused."""
    text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    if text.count("\n") != len(headers) or text.count("\r") != len(headers):
        raise ValueError(f"a header name or value holds a line break: {sorted(headers)}")
    return b"NATS/1.0\r\n" + text.encode() + _CRLF
