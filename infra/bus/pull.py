"""Pull requests kept outstanding on a durable consumer: messages arrive the moment they exist.

nats-py's ``fetch`` collects a whole batch before returning: once its lingering request has
one message it waits (up to the fetch timeout) for the rest, so a lightly loaded service pays
that wait on every hop. Instead, one inbox subscription hands each message to ``deliver`` as
it arrives, and ``top_up`` keeps as many messages requested as the consumer has room for
(like nats.go's ``Consume``). An expired request (status 408) gives back what it did not
deliver. Requests lost with a connection are asked for afresh as soon as the hot-path client
reports its reconnect; on nats-py, which does not tell, they are forgotten after their expiry.

On a pinned consumer (``pin``: a priority group with ``pinned_client``) every request names the
group and, once this replica is pinned, its pin id; a refused pin (status 423) makes this
replica a standby again, and a pinned replica sends a request at least every third of the
priority timeout, since only requests (not deliveries) keep a pin alive at the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infra.bus.core import CoreBus, Inbound
from infra.bus.pin import PIN_ID, Pin
from infra.logging import get_logger

__all__ = ["PullRequests"]

log = get_logger("agora.pull")

STATUS = "Status"
PENDING_MESSAGES = "Nats-Pending-Messages"


@dataclass
class PullRequests:
    core: CoreBus
    stream: str
    consumer: str
    deliver: Callable[[Inbound], None]
    expires_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    # Called when a request ends with messages it did not deliver (expired, cut short): the
    # owner should top up at once, or new messages wait until it next looks.
    ended: Callable[[], None] | None = None
    pin: Pin | None = None
    # A pinned replica's longest silence: its pin lapses after the priority timeout.
    keepalive_s: float = float("inf")
    outstanding: int = 0  # requested, neither delivered nor given back yet
    _inbox: str = ""
    _subscription: object = None
    _last_heard: float = field(default=0.0)
    _last_sent: float = field(default=0.0)
    _sent: int = 0
    # Each request's reply subject and batch, for a refusal that says nothing of what it had.
    _batches: dict[str, int] = field(default_factory=dict)
    _sent_at: deque[tuple[float, str]] = field(default_factory=deque)
    # Set whenever nothing is outstanding: a stopping consumer waits for it.
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self) -> PullRequests:
        self._inbox = self.core.new_inbox()
        self._subscription = await self.core.subscribe(f"{self._inbox}.*", self._on_message)
        self.core.on_reconnected(self._reconnected)
        self._last_heard = self.clock()
        return self

    def _on_message(self, msg: Inbound) -> None:
        self._last_heard = self.clock()
        headers = msg.headers
        status = headers.get(STATUS) if headers else None
        if status is None:
            self.outstanding = max(0, self.outstanding - 1)
            if self.pin is not None and headers:
                self.pin.seen(headers.get(PIN_ID, ""))
            self.deliver(msg)
        elif status in ("408", "409", "423"):
            # 408: the request expired; 409: it was cut short (max waiting, leader change…);
            # 423: it named a pin that has lapsed.
            batch = self._batches.pop(msg.subject, 0)
            pending = headers.get(PENDING_MESSAGES)
            unfilled = int(pending) if pending else batch if status == "423" else 0
            self.outstanding = max(0, self.outstanding - unfilled)
            if status == "409":
                log.info("pull_request_ended", description=headers.get("Description"))
            elif status == "423" and self.pin is not None:
                self.pin.refused()
            if (unfilled or status == "423") and self.ended is not None:
                self.ended()
        # 100 (heartbeat) and 404 (no_wait, unused here) need nothing.
        if self.outstanding == 0:
            self.settled.set()

    def _reconnected(self) -> None:
        """A new connection: requests sent on the old one are presumed gone (a restarted
        server forgot them), so the owner asks afresh at once rather than after their expiry.
        Requests that did survive (a network blip) still deliver: at worst the consumer's
        max_ack_pending is reached for a moment."""
        if self.outstanding:
            log.info("pull_requests_renewed", consumer=self.consumer, forgotten=self.outstanding)
        self.outstanding = 0
        self._batches.clear()
        self._sent_at.clear()
        self.settled.set()
        if self.ended is not None:
            self.ended()

    async def top_up(self, room: int) -> None:
        """Request more messages when at least half of ``room`` is free of outstanding ones."""
        now = self.clock()
        if self.outstanding and now - self._last_heard > self.expires_s + 2.0:
            # Nothing heard since before the requests expired: they are gone (a reconnect).
            self.outstanding = 0
        wanted = room - self.outstanding
        keep_pin = (
            self.pin is not None and self.pin.held and now - self._last_sent >= self.keepalive_s
        )
        if not keep_pin and (wanted <= 0 or (self.outstanding and wanted < room // 2)):
            return
        batch = max(1, wanted)
        request: dict[str, Any] = {"batch": batch, "expires": int(self.expires_s * 1e9)}
        if self.pin is not None:
            request["group"] = self.pin.group
            if self.pin.id:
                request["id"] = self.pin.id
        self._sent += 1
        reply = f"{self._inbox}.{self._sent}"
        self._forget_expired(now)
        self._batches[reply] = batch
        self._sent_at.append((now, reply))
        await self.core.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}",
            json.dumps(request).encode(),
            reply=reply,
        )
        self.outstanding += batch
        self.settled.clear()
        self._last_heard = self._last_sent = now

    def _forget_expired(self, now: float) -> None:
        # Filled requests end silently; after their expiry no refusal can name them any more.
        horizon, sent_at = now - self.expires_s - 2.0, self._sent_at
        while sent_at and sent_at[0][0] < horizon:
            self._batches.pop(sent_at.popleft()[1], None)

    async def close(self) -> None:
        if self._subscription is not None:
            await self.core.unsubscribe(self._subscription)
