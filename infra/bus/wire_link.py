"""One TCP connection of the wire client (infra/bus/wire.py): bytes in, frames out.

Received bytes go straight to the frame parser; messages to the client at once, control frames
to the handshake until the link is established and to the client after that. The link owns
nothing else: what to write, when to reconnect and whom to tell is the client's business.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import cast

from infra.bus.frames import Control, MessageParser, OnControl, OnMessage, ProtocolError
from infra.logging import get_logger

__all__ = ["Link"]

log = get_logger("agora.wire")


class Link(asyncio.Protocol):
    """An asyncio protocol for one connection; see the module's docstring."""

    def __init__(
        self,
        on_message: OnMessage,
        on_control: OnControl,
        on_lost: Callable[[Link], None],
        on_writable: Callable[[bool], None],
    ) -> None:
        self.transport: asyncio.Transport | None = None
        self.established = False
        self.lost: Exception | None = None
        self._on_control = on_control
        self._on_lost = on_lost
        self._on_writable = on_writable
        self._early: deque[Control] = deque()
        self._woken: asyncio.Future[None] | None = None
        self.parser = MessageParser(on_message, self._control)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport, hence the cast).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed(data)
        except ProtocolError as exc:
            log.warning("wire_protocol_error", error=str(exc))
            self.abort(exc)

    def _control(self, control: Control) -> None:
        if self.established:
            self._on_control(control)
        else:
            self._early.append(control)
            self._wake()

    def eof_received(self) -> bool:
        self.lost = self.lost or ConnectionResetError("the server closed the connection")
        return False  # close our side too, so a restarted server finds its port free

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or exc or ConnectionResetError("the connection was closed")
        self._wake()
        self._on_lost(self)

    def pause_writing(self) -> None:
        self._on_writable(False)

    def resume_writing(self) -> None:
        self._on_writable(True)

    def _wake(self) -> None:
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)

    def establish(self) -> None:
        """The handshake is done: control frames go to the client from now on, starting with
        those that followed the handshake's PONG (an INFO, say)."""
        self.established = True
        while self._early:
            self._on_control(self._early.popleft())

    async def next_control(self) -> Control:
        """The next control frame of the handshake (raises once the connection is lost)."""
        while not self._early:
            if self.lost is not None:
                raise self.lost
            self._woken = asyncio.get_running_loop().create_future()
            await self._woken
        return self._early.popleft()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def abort(self, why: Exception) -> None:
        self.lost = self.lost or why
        if self.transport is not None:
            self.transport.abort()
