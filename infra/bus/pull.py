"""Pull requests kept outstanding on a durable consumer: messages arrive the moment they exist.

nats-py's ``fetch`` collects a whole batch before returning: once its lingering request has
one message it waits (up to the fetch timeout) for the rest, so a lightly loaded service pays
that wait on every hop. Instead, one inbox subscription hands each message to ``deliver`` as
it arrives, and ``top_up`` keeps as many messages requested as the consumer has room for
(like nats.go's ``Consume``). An expired request (status 408) gives back what it did not
deliver; requests that vanish silently (a reconnect) are forgotten after their expiry.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from infra.logging import get_logger

__all__ = ["PullRequests"]

log = get_logger("agora.pull")

STATUS = "Status"
PENDING_MESSAGES = "Nats-Pending-Messages"


@dataclass
class PullRequests:
    nc: NatsClient
    stream: str
    consumer: str
    deliver: Callable[[Msg], None]
    expires_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    # Called when a request ends with messages it did not deliver (expired, cut short): the
    # owner should top up at once, or new messages wait until it next looks.
    ended: Callable[[], None] | None = None
    outstanding: int = 0  # requested, neither delivered nor given back yet
    _inbox: str = ""
    _sub: object = None
    _last_heard: float = field(default=0.0)
    # Set whenever nothing is outstanding: a stopping consumer waits for it.
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self) -> PullRequests:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(
            self._inbox, cb=self._on_message, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        self._last_heard = self.clock()
        return self

    async def _on_message(self, msg: Msg) -> None:
        self._last_heard = self.clock()
        status = msg.headers.get(STATUS) if msg.headers else None
        if status is None:
            self.outstanding = max(0, self.outstanding - 1)
            self.deliver(msg)
        elif status in ("408", "409"):
            # 408: the request expired; 409: it was cut short (max waiting, leader change…).
            assert msg.headers is not None
            unfilled = int(msg.headers.get(PENDING_MESSAGES, "0") or 0)
            self.outstanding = max(0, self.outstanding - unfilled)
            if status == "409":
                log.info("pull_request_ended", description=msg.headers.get("Description"))
            if unfilled and self.ended is not None:
                self.ended()
        # 100 (heartbeat) and 404 (no_wait, unused here) need nothing.
        if self.outstanding == 0:
            self.settled.set()

    async def top_up(self, room: int) -> None:
        """Request more messages when at least half of ``room`` is free of outstanding ones."""
        if self.outstanding and self.clock() - self._last_heard > self.expires_s + 2.0:
            # Nothing heard since before the requests expired: they are gone (a reconnect).
            self.outstanding = 0
        wanted = room - self.outstanding
        if wanted <= 0 or (self.outstanding and wanted < room // 2):
            return
        request = {"batch": wanted, "expires": int(self.expires_s * 1e9)}
        await self.nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}",
            json.dumps(request).encode(),
            reply=self._inbox,
        )
        self.outstanding += wanted
        self.settled.clear()
        self._last_heard = self.clock()

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()  # type: ignore[attr-defined]
