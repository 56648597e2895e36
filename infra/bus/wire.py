"""A lean NATS client for the services' hot path: core publish and subscribe, nothing else.

nats-py spends most of a service's messaging CPU on its own machinery: a ``Msg`` object with
parsed headers per message, a task hop per subscription callback, a flusher task. This client
dispatches each frame synchronously from ``data_received`` (infra/bus/frames.py), writes all
of one loop turn's messages in one ``transport.write``, and does what production needs:

- user/password (also from the URL) and token auth; a server that wants TLS, or a client
  configured for TLS, nkeys or a creds file, is left to nats-py (``WireRefusedError``);
- reconnect, forever, to the configured URLs and those the server announces (INFO
  ``connect_urls``), resubscribing every subscription under its old id; messages written
  while disconnected wait in a bounded buffer and go out after the resubscriptions;
- PING/PONG both ways: the server's pings answered, our own every ``ping_interval_s``, and a
  connection that leaves ``max_pings_out`` of them unanswered is dropped and reconnected;
- slow-consumer safety: messages are handled as they are parsed, so nothing queues on our side
  of the socket; when the server reads slower than we write (``pause_writing``), writes wait
  in the same bounded buffer, and once it is full ``publish`` raises ``WireBackpressureError``.

What goes out before a connection breaks may be lost with it, as with any NATS client: the hot
path only sends what is acknowledged or retried (pull requests expire, publishes wait for their
JetStream acknowledgement, an input is redelivered until acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import unquote, urlsplit

from events.errors import AgoraError
from infra.bus.core import Inbound, InboundHandler
from infra.bus.frames import (
    PING,
    PONG,
    Control,
    ProtocolError,
    ServerError,
    ServerInfo,
    connect_line,
    header_block,
    parse_headers,
    plain_client_refusal,
)
from infra.bus.wire_link import Link
from infra.logging import get_logger

__all__ = ["WireBackpressureError", "WireClient", "WireRefusedError", "WireServer"]

log = get_logger("agora.wire")

MiB: Final = 1024 * 1024
_CRLF: Final = b"\r\n"
_PING_LINE: Final = b"PING\r\n"
_PONG_LINE: Final = b"PONG\r\n"
# A subject or reply with whitespace in it would break the protocol line.
_NOT_IN_SUBJECTS: Final = re.compile(r"\s")


class WireRefusedError(AgoraError):
    """The server or the configuration wants what this client does not do (TLS, nkeys...)."""


class WireBackpressureError(AgoraError, ConnectionError):
    """Too much is waiting to be written (disconnected, or the server reads too slowly)."""


@dataclass(frozen=True, slots=True)
class WireServer:
    """One server to try: where, and the credentials its URL carries, if any."""

    host: str
    port: int
    user: str | None = None
    password: str | None = None
    token: str | None = None

    @classmethod
    def parse(cls, url: str) -> WireServer:
        if "://" not in url:
            url = f"nats://{url}"
        parts = urlsplit(url)
        if parts.scheme not in ("nats", ""):
            raise WireRefusedError(f"the server URL scheme is {parts.scheme}://, not nats://")
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if user is not None and password is None:  # nats://<token>@host
            return cls(parts.hostname or "127.0.0.1", parts.port or 4222, token=user)
        return cls(parts.hostname or "127.0.0.1", parts.port or 4222, user, password)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class WireClient:
    """A NATS connection for publishing and subscribing; see the module's docstring."""

    def __init__(
        self,
        servers: Sequence[str],
        name: str,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        inbox_prefix: str = "_INBOX",
        connect_timeout_s: float = 5.0,
        reconnect_wait_s: float = 0.25,
        ping_interval_s: float = 10.0,
        max_pings_out: int = 2,
        max_buffered_bytes: int = 8 * MiB,
    ) -> None:
        if not servers:
            raise WireRefusedError("no server to connect to")
        self.name = name
        self._servers = [WireServer.parse(url) for url in servers]
        self._user, self._password, self._token = user, password, token
        self._inbox_prefix = inbox_prefix
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_wait_s = reconnect_wait_s
        self.ping_interval_s = ping_interval_s
        self.max_pings_out = max_pings_out
        self.max_buffered_bytes = max_buffered_bytes
        self.max_payload = 1 * MiB
        self.server_info: dict[str, object] = {}
        self._link: Link | None = None
        self._current = 0  # index into _servers of the server connected (or last tried)
        self._subs: dict[bytes, tuple[str, InboundHandler]] = {}
        self._next_sid = 0
        self._inboxes = 0
        self._inbox_base = f"{inbox_prefix}.{os.urandom(8).hex()}"
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False
        # The loop the connection was opened on: asking for it on every write would cost a
        # getpid system call each time (Python 3.11).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writable = True
        # What each PING we sent waits for, in order: None (a keepalive) or a flush's future.
        self._pings: deque[asyncio.Future[None] | None] = deque()
        self._ping_timer: asyncio.TimerHandle | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        self._on_reconnected: list[Callable[[], None]] = []
        self.reconnects = 0

    # -- connecting ------------------------------------------------------------------------------

    async def connect(self) -> WireClient:
        """Connect to the first server that accepts us; raise if none does (each tried once)."""
        errors: list[str] = []
        for index, server in enumerate(self._servers):
            try:
                link = await self._open(server)
            except WireRefusedError:
                raise
            except (OSError, TimeoutError, ProtocolError) as exc:
                errors.append(f"{server.address}: {exc!r}")
                continue
            self._current = index
            self._adopt(link)
            return self
        raise ConnectionError(f"no NATS server accepted the wire client: {'; '.join(errors)}")

    @property
    def is_connected(self) -> bool:
        return self._link is not None

    @property
    def connected_address(self) -> str | None:
        return self._servers[self._current].address if self._link is not None else None

    @property
    def known_servers(self) -> list[str]:
        return [server.address for server in self._servers]

    def on_reconnected(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every reconnect (subscriptions are back by then)."""
        self._on_reconnected.append(listener)

    async def _open(self, server: WireServer) -> Link:
        loop = self._loop = asyncio.get_running_loop()
        link = Link(self._on_message, self._on_control, self._link_lost, self._set_writable)
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await loop.create_connection(lambda: link, server.host, server.port)
                self._learn(await self._handshake(link, server))
        except BaseException:
            link.abort(ConnectionAbortedError("the handshake did not finish"))
            raise
        return link

    async def _handshake(self, link: Link, server: WireServer) -> Mapping[str, object]:
        """INFO, CONNECT, PING, then PONG (accepted) or -ERR (refused); the newest INFO."""
        info = await link.next_control()
        if not isinstance(info, ServerInfo):
            raise ProtocolError(f"the server did not start with INFO but {info!r}")
        user, password, token = self._credentials(server)
        refusal = plain_client_refusal(info.info, authenticated=bool(user or token))
        if refusal is not None:
            raise WireRefusedError(refusal)
        link.write(connect_line(self.name, user, password, token=token))
        while (answer := await link.next_control()) is not PONG:
            if isinstance(answer, ServerError):
                raise ConnectionRefusedError(f"the server refused us: {answer.message}")
            if isinstance(answer, ServerInfo):
                info = answer
        return info.info

    def _credentials(self, server: WireServer) -> tuple[str | None, str | None, str | None]:
        if server.user is not None or server.token is not None:
            return server.user, server.password, server.token
        return self._user, self._password, self._token

    def _adopt(self, link: Link) -> None:
        """``link`` becomes the connection: subscriptions renewed, waiting writes sent after."""
        self._link = link
        subs = self._subs.items()
        if subs:
            link.write(b"".join(b"SUB %s %s\r\n" % (s.encode(), sid) for sid, (s, _) in subs))
        link.establish()
        self._writable = True
        self._schedule_flush()
        self._arm_ping()

    def _learn(self, info: Mapping[str, object]) -> None:
        """What an INFO says: the payload limit, and cluster members to reconnect to."""
        self.server_info = dict(info)
        max_payload = info.get("max_payload")
        if isinstance(max_payload, int) and max_payload > 0:
            self.max_payload = max_payload
        urls = info.get("connect_urls")
        if isinstance(urls, list):
            known = {server.address for server in self._servers}
            for url in urls:
                if isinstance(url, str) and url not in known:
                    try:
                        self._servers.append(WireServer.parse(url))
                    except WireRefusedError:
                        continue
                    known.add(url)
                    log.info("wire_server_discovered", server=url, client=self.name)

    def _set_writable(self, writable: bool) -> None:
        self._writable = writable
        if writable:
            self._schedule_flush()

    def _link_lost(self, link: Link) -> None:
        if link is not self._link:
            return
        self._link = None
        self._disarm_ping()
        pings, self._pings = self._pings, deque()
        for waiter in pings:
            if waiter is not None and not waiter.done():
                waiter.set_exception(
                    ConnectionResetError("disconnected before the server answered")
                )
        if self._closed:
            return
        log.warning("wire_disconnected", client=self.name, error=repr(link.lost))
        self._reconnecting = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        while not self._closed:
            for index in self._turns():
                server = self._servers[index]
                try:
                    link = await self._open(server)
                except (OSError, TimeoutError, ProtocolError, WireRefusedError) as exc:
                    log.debug("wire_reconnect_failed", server=server.address, error=repr(exc))
                    continue
                if self._closed:
                    link.abort(ConnectionAbortedError("closed while reconnecting"))
                    return
                self._current = index
                self.reconnects += 1
                self._adopt(link)
                log.warning("wire_reconnected", client=self.name, server=server.address)
                for listener in self._on_reconnected:
                    listener()
                return
            # A whole round failed: wait (with jitter, so replicas do not storm one server).
            await asyncio.sleep(self.reconnect_wait_s * (1 + random.random()))  # noqa: S311

    def _turns(self) -> Iterable[int]:
        """Every server, starting after the one just lost (so a dead one is tried last)."""
        count = len(self._servers)
        return [(self._current + 1 + n) % count for n in range(count)]

    # -- pings -----------------------------------------------------------------------------------

    def _arm_ping(self) -> None:
        self._disarm_ping()
        loop = asyncio.get_running_loop()
        self._ping_timer = loop.call_later(self.ping_interval_s, self._keepalive)

    def _disarm_ping(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None

    def _keepalive(self) -> None:
        link = self._link
        if link is None:
            return
        if sum(1 for waiter in self._pings if waiter is None) >= self.max_pings_out:
            log.warning("wire_stale_connection", client=self.name, unanswered=self.max_pings_out)
            link.abort(TimeoutError(f"{self.max_pings_out} pings went unanswered"))
            return
        self._send(_PING_LINE, control=True)
        self._pings.append(None)
        self._arm_ping()

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Return once the server has read everything written so far (a PING's PONG)."""
        if self._link is None:
            raise ConnectionResetError("the wire client is not connected")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._send(_PING_LINE, control=True)
        self._pings.append(waiter)
        async with asyncio.timeout(timeout_s):
            await waiter

    # -- reading ---------------------------------------------------------------------------------

    def _on_message(
        self, subject: bytes, sid: bytes, reply: bytes, headers: bytes, payload: bytes
    ) -> None:
        subscription = self._subs.get(sid)
        if subscription is None:
            return  # unsubscribed meanwhile
        try:
            subscription[1](
                Inbound(subject.decode(), reply.decode(), parse_headers(headers), payload)
            )
        except Exception as exc:  # one handler's bug must not break the connection
            log.exception("wire_handler_failed", subject=subscription[0], error=repr(exc))

    def _on_control(self, control: Control) -> None:
        if control is PING:
            self._send(_PONG_LINE, control=True)
        elif control is PONG:
            if self._pings:
                waiter = self._pings.popleft()
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        elif isinstance(control, ServerInfo):
            self._learn(control.info)
            if control.info.get("ldm"):
                log.warning("wire_server_lame_duck", client=self.name)
        elif isinstance(control, ServerError):
            # Permission violations leave the connection open; anything else the server
            # follows by closing it, and we reconnect.
            log.warning("wire_server_error", client=self.name, error=control.message)

    # -- subscribing -----------------------------------------------------------------------------

    def new_inbox(self) -> str:
        self._inboxes += 1
        return f"{self._inbox_base}.{self._inboxes}"

    async def subscribe(self, subject: str, handler: InboundHandler) -> object:
        _check_subject(subject)
        self._next_sid += 1
        sid = str(self._next_sid).encode()
        self._subs[sid] = (subject, handler)
        if self._link is not None:
            self._send(f"SUB {subject} {self._next_sid}\r\n".encode())
        return sid

    async def unsubscribe(self, subscription: object) -> None:
        sid = cast(bytes, subscription)
        if self._subs.pop(sid, None) is not None and self._link is not None:
            self._send(b"UNSUB " + sid + _CRLF)

    async def request(self, subject: str, payload: bytes, *, timeout_s: float) -> Inbound:
        """Send ``payload`` to ``subject`` and return the first reply, within ``timeout_s``
        (else ``TimeoutError``). No one listening comes back as a reply too: the server's
        status ``503`` in ``headers["Status"]``."""
        answered: asyncio.Future[Inbound] = asyncio.get_running_loop().create_future()

        def on_reply(reply: Inbound) -> None:
            if not answered.done():
                answered.set_result(reply)

        inbox = self.new_inbox()
        subscription = await self.subscribe(inbox, on_reply)  # written before the request
        try:
            await self.publish(subject, payload, reply=inbox)
            async with asyncio.timeout(timeout_s):
                return await answered
        finally:
            await self.unsubscribe(subscription)

    # -- writing ---------------------------------------------------------------------------------

    async def publish(
        self,
        subject: str,
        payload: bytes,
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queue one message for this loop turn's write (it never waits)."""
        _check_subject(subject)
        target = f"{subject} {reply}" if reply else subject
        if reply:
            _check_subject(reply)
        if headers:
            block = header_block(headers)
            size = len(block) + len(payload)
            line = f"HPUB {target} {len(block)} {size}\r\n".encode()
            data = b"".join((line, block, payload, _CRLF))
        else:
            size = len(payload)
            data = b"".join((f"PUB {target} {size}\r\n".encode(), payload, _CRLF))
        if size > self.max_payload:
            raise ValueError(f"a {size}-byte message is over the server's {self.max_payload}")
        self._send(data)

    def _send(self, data: bytes, *, control: bool = False) -> None:
        """Queue ``data`` for this loop turn's write. Only protocol control (PING, PONG) may
        go past the buffer's limit: it is tiny, and refusing it would break the connection."""
        if not control and self._out_bytes + len(data) > self.max_buffered_bytes:
            raise WireBackpressureError(
                f"{self._out_bytes} bytes are waiting to be written to NATS "
                f"({'disconnected' if self._link is None else 'the server reads slowly'})"
            )
        self._out.append(data)
        self._out_bytes += len(data)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._write_out)

    def _write_out(self) -> None:
        self._flush_scheduled = False
        link = self._link
        if link is None or not self._writable or not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_bytes = 0
        link.write(data)

    # -- closing ---------------------------------------------------------------------------------

    async def close(self, timeout_s: float = 2.0) -> None:
        """Send what is waiting (acks, naks), then close; idempotent."""
        if self._closed:
            return
        if self._link is not None:
            with contextlib.suppress(ConnectionError, TimeoutError):
                await self.flush(timeout_s)
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        self._disarm_ping()
        link, self._link = self._link, None
        if link is not None and link.transport is not None:
            link.transport.close()


def _check_subject(subject: str) -> None:
    if not subject or _NOT_IN_SUBJECTS.search(subject):
        raise ValueError(f"not a NATS subject: {subject[:200]!r}")
