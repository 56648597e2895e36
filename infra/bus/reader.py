"""Reading a stream's raw messages in order, as fast as the machine allows.

The projector and replay read the whole event log. nats-py's JetStream consumer API manages
~25-35k messages/s on a 2-core machine; even its core layer spends most of a bulk read on
its protocol parser and a ``Msg`` object (with parsed headers) per message. So this reader
creates one ephemeral ack-none consumer through nats-py, and pulls from it (one
``CONSUMER.MSG.NEXT`` request per batch) over its own plain TCP connection that speaks the
NATS protocol just for this: see ``infra.bus.frames``. The stream sequence and timestamp of a
message come from its reply subject.

A tailing read (``next_batch(wait=True)``) keeps no request open for the messages to stream
into, which would wake this process for every event stored (the projector, memory and the
trace follower each woke ~12 times per standard goal, competing for the two cores with the
services a goal waits on). It asks for one message, lingering, and once that one is there
waits ``linger_s`` with nothing outstanding and then takes whatever was stored meanwhile in
one no_wait read: two wake-ups per batch, the same batches, and a new event still waits at
most ``linger_s`` to be read.

Servers that need TLS, or credentials other than a user and password, get the old path instead
(an inbox subscription on the nats-py connection): doing TLS and every auth scheme again is
not worth it for a read path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from events.errors import AgoraError
from infra.bus.frames import (
    PING,
    PONG,
    Control,
    Deliveries,
    FrameParser,
    ProtocolError,
    ServerError,
    ServerInfo,
    Status,
    connect_line,
    plain_client_refusal,
    publish_line,
    reply_position,
    sub_line,
)
from infra.logging import get_logger

__all__ = [
    "RawBatch",
    "StreamReadError",
    "StreamReader",
    "reply_position",
    "stream_last_seq",
]

log = get_logger("agora.stream_reader")

# 404: nothing (more) right now; 408: the request expired. 100 is a heartbeat. Any other
# status (409 consumer deleted, leadership change, ...) means the consumer must be recreated.
_END_OF_REQUEST: Final = frozenset({404, 408})
_HEARTBEAT: Final = 100
_CONNECT_TIMEOUT_S: Final = 5.0
# The most a pull waits for the server beyond its own expiry before the reader gives up on it.
_ANSWER_GRACE_S: Final = 5.0
# next_batch tries this many pulls (recovering in between) before it reports the stream broken.
_PULL_ATTEMPTS: Final = 3
_RETRY_PAUSE_S: Final = 0.25
_fallback_reasons_logged: set[str] = set()


class StreamReadError(AgoraError):
    """The stream could not be read even after recreating the consumer and reconnecting."""


@dataclass(slots=True)
class RawBatch:
    seqs: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    timestamps_ns: list[int] = field(default_factory=list)
    pending: int = 0  # messages left in the stream after this batch, when it was read

    def __len__(self) -> int:
        return len(self.seqs)

    def cut_after(self, seq: int) -> None:
        """Drop every message after stream sequence ``seq``."""
        self.keep(sum(1 for s in self.seqs if s <= seq))

    def keep(self, count: int) -> None:
        """Keep only the first ``count`` messages."""
        del self.seqs[count:], self.payloads[count:], self.timestamps_ns[count:]

    def extend(self, later: RawBatch) -> None:
        """Append the messages of ``later``, read after these (its ``pending`` is the news)."""
        self.seqs += later.seqs
        self.payloads += later.payloads
        self.timestamps_ns += later.timestamps_ns
        self.pending = later.pending

    def take(self, count: int) -> RawBatch:
        """Remove the first ``count`` messages and return them as a batch of their own."""
        first = RawBatch(
            self.seqs[:count], self.payloads[:count], self.timestamps_ns[:count], self.pending
        )
        del self.seqs[:count], self.payloads[:count], self.timestamps_ns[:count]
        return first


@dataclass(slots=True)
class _Pulled:
    """What one pull request brought, and how it ended."""

    deliveries: Deliveries
    full: bool = False  # the batch is complete: more may be waiting
    broken: bool = False  # the consumer or the connection needs recreating


class _Transport(Protocol):
    # How many pull requests may be outstanding at once (answered in order).
    pipeline: int

    async def request(self, subject: str, body: bytes, wanted: int) -> None:
        """Send one pull request for ``wanted`` messages (errors surface in ``collect``)."""

    async def collect(self, timeout_s: float) -> _Pulled:
        """The oldest outstanding request's messages, once it is full, ended or broken."""

    async def close(self) -> None: ...


def _wire_refusal(nc: NatsClient) -> str | None:
    """Why the client's configuration rules out our own plain connection (None: it doesn't)."""
    url = nc.connected_url
    if url is None:
        return "the nats-py client is not connected"
    if url.scheme != "nats":
        return f"the server URL scheme is {url.scheme}://, not nats://"
    if nc.options.get("tls") is not None:
        return "the nats-py client is configured for TLS"
    # A user and password we send ourselves (agora's identities); tokens, nkeys and creds
    # files, which nats-py keeps in private attributes, we do not.
    other = ("_user_credentials", "_nkeys_seed", "_nkeys_seed_str")
    if url.username or nc.options.get("token") or any(getattr(nc, a, None) for a in other):
        return "the nats-py client uses credentials other than a user and password"
    if getattr(nc, "_auth_configured", False) and not nc.options.get("user"):
        return "the nats-py client is configured with credentials"
    return None


def _log_fallback(reason: str) -> None:
    if reason not in _fallback_reasons_logged:
        _fallback_reasons_logged.add(reason)
        log.info("stream_reader_uses_nats_py", reason=reason)


class _WireRefusedError(Exception):
    """The server wants what our plain connection does not do (TLS, auth): use nats-py."""


class _SocketFeed(asyncio.Protocol):
    """Feeds received bytes straight into the parser and wakes whoever waits for them.

    It closes the socket as soon as the server does (a half-open socket would keep the
    server's port busy across a restart) and remembers why, for the next read.
    """

    def __init__(self, parser: FrameParser) -> None:
        self._parser = parser
        self._arrived: asyncio.Future[None] | None = None
        self.lost: Exception | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport, hence the cast).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        self._wake()

    def eof_received(self) -> bool:
        self.lost = ConnectionResetError("the server closed the connection")
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or exc or ConnectionResetError("the connection was closed")
        self._wake()

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    async def more(self) -> None:
        """Wait until new bytes (or the end of the connection) arrive."""
        if self.lost is not None:
            raise self.lost
        self._arrived = asyncio.get_running_loop().create_future()
        await self._arrived
        if self.lost is not None:
            raise self.lost


class _WireTransport:
    """Our own TCP connection, subscribed to one inbox, that only sends pull requests.

    Two requests are kept outstanding while batches come back full, so the server streams the
    next batch while this process parses the previous one.
    """

    pipeline = 2

    def __init__(self, inbox: str) -> None:
        self._inbox = inbox
        self._parser = FrameParser()
        self._socket = _SocketFeed(self._parser)
        self._wanted: deque[int] = deque()

    @classmethod
    async def open(
        cls, host: str, port: int, inbox: str, name: str, auth: tuple[str, str] | None = None
    ) -> _WireTransport:
        transport = cls(inbox)
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                loop = asyncio.get_running_loop()
                await loop.create_connection(lambda: transport._socket, host, port)
                await transport._handshake(name, auth)
        except BaseException:
            await transport.close()
            raise
        return transport

    def _write(self, data: bytes) -> None:
        # Tiny writes go out at once; a dead socket shows up as a lost connection when reading.
        if self._socket.transport is not None and not self._socket.transport.is_closing():
            self._socket.transport.write(data)

    async def _handshake(self, name: str, auth: tuple[str, str] | None) -> None:
        info = await self._next_control()
        if not isinstance(info, ServerInfo):
            raise ProtocolError(f"the server did not start with INFO but {info!r}")
        refusal = plain_client_refusal(info.info, authenticated=auth is not None)
        if refusal is not None:
            raise _WireRefusedError(refusal)
        self._write(connect_line(name, *(auth or (None, None))))
        while (answer := await self._next_control()) is not PONG:
            if isinstance(answer, ServerError):
                raise _WireRefusedError(f"the server refused CONNECT: {answer.message}")
        self._write(sub_line(self._inbox, 1))

    async def _next_control(self) -> Control:
        while (control := self._parser.parse()) is None:
            await self._socket.more()
        return control

    async def request(self, subject: str, body: bytes, wanted: int) -> None:
        self._wanted.append(wanted)
        self._write(publish_line(subject, self._inbox, body))

    async def collect(self, timeout_s: float) -> _Pulled:
        parser = self._parser
        pulled = _Pulled(Deliveries())
        wanted = self._wanted.popleft()
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    control = parser.parse(wanted)
                    if control is None:
                        if parser.collected >= wanted:
                            pulled.full = True
                            break
                        await self._socket.more()
                    elif not self._request_goes_on(control):
                        pulled.broken = not (
                            isinstance(control, Status) and control.code in _END_OF_REQUEST
                        )
                        break
        except (OSError, TimeoutError, ProtocolError) as exc:
            # The server restarted, the request got lost or the bytes make no sense: what
            # arrived is still good; the caller recreates the consumer and the connection.
            log.warning("stream_reader_pull_failed", error=repr(exc))
            pulled.broken = True
        pulled.deliveries = parser.take()
        return pulled

    def _request_goes_on(self, control: Control) -> bool:
        """Handle a non-data frame; False when it ends the current pull request."""
        if control is PING:
            self._write(b"PONG\r\n")
            return True
        if isinstance(control, Status):
            if control.code == _HEARTBEAT:
                return True
            if control.code not in _END_OF_REQUEST:
                log.warning(
                    "stream_reader_status", status=control.code, description=control.description
                )
            return False
        if isinstance(control, ServerError):
            log.warning("stream_reader_server_error", error=control.message)
            return False
        return True  # INFO (cluster changes), PONG: nothing to do

    async def close(self) -> None:
        if self._socket.transport is not None:
            self._socket.transport.close()


class _InboxTransport:
    """The fallback: an inbox subscription on the nats-py connection whose callback appends."""

    pipeline = 1

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._sub: object = None
        self._pulled = _Pulled(Deliveries())
        self._wanted = 0
        self._done = asyncio.Event()

    async def open(self) -> _InboxTransport:
        self._sub = await self._nc.subscribe(
            self._inbox, cb=self._on_message, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        return self

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers
        status = headers.get("Status") if headers else None
        pulled = self._pulled
        if status is None:
            seq, timestamp, _ = reply_position(msg.reply)
            pulled.deliveries.seqs.append(seq)
            pulled.deliveries.timestamps_ns.append(timestamp)
            pulled.deliveries.payloads.append(msg.data)
            pulled.deliveries.last_reply = msg.reply.encode()
            if len(pulled.deliveries.payloads) >= self._wanted:
                pulled.full = True
                self._done.set()
        elif int(status) != _HEARTBEAT:
            if int(status) not in _END_OF_REQUEST:
                log.warning("stream_reader_status", status=status, description=headers)
                pulled.broken = True
            self._done.set()

    async def request(self, subject: str, body: bytes, wanted: int) -> None:
        self._pulled = _Pulled(Deliveries())
        self._wanted = wanted
        self._done.clear()
        try:
            await self._nc.publish(subject, body, reply=self._inbox)
        except nats.errors.Error as exc:
            log.warning("stream_reader_pull_failed", error=repr(exc))
            self._pulled.broken = True
            self._done.set()

    async def collect(self, timeout_s: float) -> _Pulled:
        try:
            await asyncio.wait_for(self._done.wait(), timeout_s)
        except TimeoutError:
            self._pulled.broken = True  # no answer: the server restarted or the consumer vanished
        pulled, self._pulled = self._pulled, _Pulled(Deliveries())  # late arrivals go nowhere
        return pulled

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()  # type: ignore[attr-defined]


@dataclass
class StreamReader:
    nc: NatsClient
    stream: str
    filter_subject: str
    start_seq: int = 1
    batch: int = 10_000
    # How long a pull request waits for messages when the reader has caught up: the most a
    # new event waits before a tailing projector sees it.
    linger_s: float = 0.1
    # False: always use the nats-py connection (tests force the fallback path with it).
    wire: bool = True
    # How long recovery (server restart, consumer lost) keeps trying before giving up.
    recover_timeout_s: float = 30.0
    # Subjects read besides ``filter_subject`` (one consumer, one ordered read of them all).
    more_filter_subjects: tuple[str, ...] = ()
    _consumer: str | None = None
    _transport: _Transport | None = None
    _refusal: str | None = None
    _broken: bool = False
    _next_seq: int = 0
    # The last read left nothing stored behind it: a waiting read asks for one message first.
    _caught_up: bool = False
    # Bodies of the pull requests sent ahead (oldest first), so the server streams the next
    # batch while the caller works on this one.
    _in_flight: deque[bytes] = field(default_factory=deque)

    async def open(self) -> StreamReader:
        self._next_seq = self.start_seq
        self._refusal = "disabled by the caller" if not self.wire else _wire_refusal(self.nc)
        await self._create_consumer()
        await self._connect()
        return self

    @property
    def _no_wait_body(self) -> bytes:
        return json.dumps({"batch": self.batch, "no_wait": True}).encode()

    @property
    def _rest_body(self) -> bytes:
        """What a batch holds after its first message: whatever is stored, at once."""
        return json.dumps({"batch": self.batch - 1, "no_wait": True}).encode()

    @property
    def _first_body(self) -> bytes:
        """One message, as soon as it is stored (or nothing once ``linger_s`` is over)."""
        return json.dumps({"batch": 1, "expires": int(self.linger_s * 1e9)}).encode()

    @property
    def consumer(self) -> str | None:
        """The name of the ephemeral consumer read right now (None while recreating it)."""
        return self._consumer

    @property
    def uses_wire(self) -> bool:
        """True while the reader pulls over its own connection rather than nats-py's."""
        return isinstance(self._transport, _WireTransport)

    async def next_batch(self, *, wait: bool = True) -> RawBatch:
        """The next messages in stream order (possibly none). ``wait``: when none is stored
        yet, wait up to ``linger_s`` for one, then ``linger_s`` more for what follows it."""
        if not (wait and self._caught_up) or self._in_flight:
            batch = await self._read(self._no_wait_body, self.batch)
            self._caught_up = batch.pending == 0 and len(batch) < self.batch
            if batch.seqs or not wait:
                return batch
        first = await self._read(self._first_body, 1)
        if len(first) != 1 or self.batch == 1:
            return first  # nothing came within linger_s
        if first.pending < self.batch - 1:  # no full batch waiting: let one gather, unwoken
            await asyncio.sleep(self.linger_s)
        rest = await self._read(self._rest_body, self.batch - 1)
        self._caught_up = rest.pending == 0 and len(rest) < self.batch - 1
        first.seqs += rest.seqs
        first.payloads += rest.payloads
        first.timestamps_ns += rest.timestamps_ns
        first.pending = rest.pending if rest.seqs else first.pending
        return first

    async def _read(self, body: bytes, wanted: int) -> RawBatch:
        for _ in range(_PULL_ATTEMPTS):
            pulled = await self._pull(body, wanted)
            if pulled.deliveries.payloads or not pulled.broken:
                return self._to_batch(pulled.deliveries)
        raise StreamReadError(
            f"reading stream {self.stream} failed {_PULL_ATTEMPTS} times in a row even after "
            "recreating its consumer: check the server's log and the stream's health"
        )

    async def _pull(self, body: bytes, wanted: int) -> _Pulled:
        if self._broken:
            await self._recover()
        transport = self._transport
        assert transport is not None
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self._consumer}"
        in_flight = self._in_flight
        if not in_flight:
            await transport.request(subject, body, wanted)
            in_flight.append(body)
        timeout_s = self.linger_s + _ANSWER_GRACE_S
        sent = in_flight.popleft()
        pulled = await transport.collect(timeout_s)
        while sent != body and not (pulled.deliveries.payloads or pulled.broken):
            # A request sent ahead asked differently (no_wait vs linger) and found nothing.
            if not in_flight:
                await transport.request(subject, body, wanted)
                in_flight.append(body)
            sent = in_flight.popleft()
            pulled = await transport.collect(timeout_s)
        self._broken = pulled.broken
        # Only bulk reads are sent ahead: a one-message wait is full as soon as it is answered.
        while (
            pulled.full
            and body == self._no_wait_body
            and len(in_flight) < self._depth(transport, body, pulled)
        ):
            await transport.request(subject, body, self.batch)
            in_flight.append(body)
        return pulled

    def _depth(self, transport: _Transport, body: bytes, pulled: _Pulled) -> int:
        """How many requests to keep outstanding after a full batch.

        One more is always safe: it reaches the server after the last one ended. A second one
        (the server streams while we parse) only for no_wait requests when the stream holds
        enough for both, because the server answers a second request early whenever the first
        could leave it short (no_wait: "408 Requests Pending"; expiry: "408 Request Timeout"),
        and on one inbox an early answer cannot be told apart from the first request's end.
        """
        if transport.pipeline < 2 or body != self._no_wait_body:
            return 1
        pending = reply_position(pulled.deliveries.last_reply)[2]
        return 2 if pending >= 2 * self.batch else 1

    def _to_batch(self, deliveries: Deliveries) -> RawBatch:
        batch = RawBatch(deliveries.seqs, deliveries.payloads, deliveries.timestamps_ns)
        if deliveries.last_reply:
            batch.pending = reply_position(deliveries.last_reply)[2]
        if batch.seqs:
            self._next_seq = batch.seqs[-1] + 1
        return batch

    async def _create_consumer(self) -> None:
        info = await self.nc.jetstream().add_consumer(
            self.stream,
            ConsumerConfig(
                # Named: under agora's permissions only a named create is allowed, since an
                # unnamed one could name (and so change) another service's durable consumer.
                name=f"read_{uuid.uuid4().hex}",
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(1, self._next_seq),
                ack_policy=AckPolicy.NONE,
                filter_subject=None if self.more_filter_subjects else self.filter_subject,
                filter_subjects=(
                    [self.filter_subject, *self.more_filter_subjects]
                    if self.more_filter_subjects
                    else None
                ),
                mem_storage=True,
                inactive_threshold=60.0,
                # +1: the server may count a request it has just filled as still waiting
                # when the next one arrives ("409 Exceeded MaxWaiting" otherwise).
                max_waiting=_WireTransport.pipeline + 1,
            ),
        )
        self._consumer = info.name

    async def _connect(self) -> None:
        """A fresh transport (and inbox), so no answer to an older request can reach us."""
        await self._close_transport()
        if self._refusal is None:
            url = self.nc.connected_url
            if url is None or url.hostname is None:
                raise ConnectionResetError("the nats-py client is reconnecting")
            name = f"{self.nc.options.get('name') or 'agora'}/stream-reader"
            try:
                # The nats-py connection's credentials, if any (a user and password).
                user, password = self.nc.options.get("user"), self.nc.options.get("password")
                self._transport = await _WireTransport.open(
                    url.hostname,
                    url.port or 4222,
                    self.nc.new_inbox(),
                    name,
                    (str(user), str(password)) if user is not None else None,
                )
            except _WireRefusedError as refused:
                self._refusal = str(refused)
            else:
                return
        _log_fallback(self._refusal)
        self._transport = await _InboxTransport(self.nc).open()

    async def _close_transport(self) -> None:
        transport, self._transport = self._transport, None
        self._in_flight.clear()
        if transport is not None:
            await transport.close()

    async def _recover(self) -> None:
        """Recreate the consumer from the next sequence and reconnect, until the deadline."""
        log.info("stream_reader_recovering", stream=self.stream, next_seq=self._next_seq)
        await self._close_transport()
        await self._delete_consumer()
        await _retry_until(time.monotonic() + self.recover_timeout_s, self._reopen)
        self._broken = False

    async def _reopen(self) -> None:
        await self._create_consumer()
        await self._connect()

    async def _delete_consumer(self) -> None:
        # Best effort: an old consumer could still answer an old request; it also expires.
        consumer, self._consumer = self._consumer, None
        if consumer and self.nc.is_connected:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self.nc.jetstream().delete_consumer(self.stream, consumer)

    async def close(self) -> None:
        await self._close_transport()
        await self._delete_consumer()


async def _retry_until(deadline: float, attempt: Callable[[], Awaitable[None]]) -> None:
    while True:
        try:
            await attempt()
        except (nats.errors.Error, OSError, TimeoutError, ProtocolError) as exc:
            if time.monotonic() >= deadline:
                raise StreamReadError(
                    f"could not reconnect the stream reader: {exc!r}; is the NATS server up?"
                ) from exc
            log.info("stream_reader_retrying", error=repr(exc))
            await asyncio.sleep(_RETRY_PAUSE_S)
        else:
            return


async def stream_last_seq(nc: NatsClient, stream: str) -> int:
    info = await nc.jetstream().stream_info(stream)
    return int(info.state.last_seq)
