"""The lease of a service's active replica, and the fence every write of it carries.

A pinned consumer (a priority group with ``pinned_client``) gives one replica every message,
but pinning is not exclusivity: a replica that stalls past the priority timeout loses its pin
while it still believes it has it, and may resume mid-decision. So the replica that gets the
pin first records a ``lease_acquired`` event on ``agora.events._<service>.lease_acquired``
(compare-and-set on that subject's last sequence), and every write it makes afterwards is
fenced on that sequence (``Nats-Expected-Last-Subject-Sequence``). Once another replica has
taken the lease, the old holder's next write is refused at the stream, nothing of it stored:
it learns it lost the lease from that refusal, drops its state and stands by.

The fence subject is written by nobody but lease holders, so a decision's events go out back
to back under one fence, in one round trip.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import PubAck

from events.catalog import LeaseAcquired
from events.codec import decode_event
from events.errors import AgoraError, LeaseLostError
from events.ids import derive_id
from events.model import Event
from events.subjects import EVENTS_STREAM, lease_goal_id, lease_subject
from infra.bus.publisher import EventPublisher, Fence, FenceRefusedError, GoalChangedError
from infra.logging import get_logger

__all__ = ["Lease", "NotPinnedError", "SingleFlight", "replica_id"]

log = get_logger("agora.lease")
# Compare-and-set rounds lost to concurrent takers before giving up (while still pinned).
_MAX_ROUNDS = 8


class NotPinnedError(AgoraError):
    """The lease could not be taken because this replica is no longer the pinned one."""


def replica_id() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is new)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Lease:
    def __init__(
        self,
        nc: NatsClient,
        publish: EventPublisher,
        *,
        service: str,
        producer: str,
        now: Callable[[], datetime],
        holder: str | None = None,
    ) -> None:
        self._nc = nc
        self._publish = publish
        self.service = service
        self.subject = lease_subject(service)
        self.holder = holder or replica_id()
        self._producer = producer
        self._now = now
        self.fence: Fence | None = None
        self.acquisitions = 0
        self.losses = 0

    @property
    def held(self) -> bool:
        return self.fence is not None

    async def acquire(self, still_pinned: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Record this replica as the active one; from now on its writes are fenced on it.

        Another replica taking it at the same moment makes the compare-and-set fail: if this
        replica is still the pinned one (``still_pinned``), it tries again on the newer lease;
        otherwise it raises ``NotPinnedError`` and stays a standby.
        """
        for _ in range(_MAX_ROUNDS):
            seq, previous = await self._current()
            if seq and previous == self.holder:
                # Ours already (a write whose acknowledgement was lost): nobody took it since.
                self._hold(seq)
                return
            event = LeaseAcquired(
                event_id=derive_id(self.service, "lease", self.holder, seq),
                goal_id=lease_goal_id(self.service),
                occurred_at=self._now(),
                causation_id=None,
                correlation_id=lease_goal_id(self.service),
                producer=self._producer,
                service=self.service,
                holder=self.holder,
                previous_holder=previous,
            )
            try:
                [ack] = await self._publish([event], expected_last_seq=seq)
            except GoalChangedError:
                if still_pinned is not None and not await still_pinned():
                    self.fence = None
                    raise NotPinnedError(
                        f"another {self.service} replica took the lease; standing by"
                    ) from None
                continue
            self._hold(ack.seq)
            log.warning(
                "lease_acquired",
                service=self.service,
                holder=self.holder,
                previous_holder=previous,
                seq=ack.seq,
            )
            return
        raise NotPinnedError(f"the {self.service} lease kept changing under {_MAX_ROUNDS} tries")

    def _hold(self, seq: int) -> None:
        self.fence = Fence(seq, self.subject)
        self.acquisitions += 1

    def release(self) -> None:
        """Forget the lease locally (the pin moved elsewhere); the next write would be refused."""
        self.fence = None

    async def append(self, events: Sequence[Event], *, epoch: Fence | None = None) -> list[PubAck]:
        """Publish ``events`` fenced on the lease; ``LeaseLostError`` if another replica has it.

        ``epoch``: the fence the caller's decision was taken under. A decision taken before the
        lease was lost and taken again was made on state from before; it must not be written
        under the new lease, so it is refused here, before anything is sent.
        """
        fence = self.fence
        if fence is None or (epoch is not None and epoch != fence):
            raise LeaseLostError(
                f"this replica does not hold the {self.service} lease it decided under"
            )
        try:
            return await self._publish(events, fence=fence)
        except FenceRefusedError:
            if self.fence == fence:
                self.fence = None
                self.losses += 1
                log.warning("lease_lost", service=self.service, holder=self.holder)
            raise LeaseLostError(
                f"another {self.service} replica holds the lease now; nothing was written"
            ) from None

    async def _current(self) -> tuple[int, str]:
        """The last lease's stream sequence (0: never taken) and its holder."""
        try:
            msg = await self._nc.jetstream().get_last_msg(EVENTS_STREAM, self.subject)
        except nats.js.errors.NotFoundError:
            return 0, ""
        event = decode_event(msg.data or b"")
        holder = event.holder if isinstance(event, LeaseAcquired) else ""
        return int(msg.seq or 0), holder


class SingleFlight:
    """Runs one coroutine at a time for every caller: those who ask while it runs await it."""

    def __init__(self) -> None:
        self._running: asyncio.Future[None] | None = None

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        if self._running is None:
            self._running = asyncio.ensure_future(work())
            self._running.add_done_callback(self._finished)
        await asyncio.shield(self._running)

    def _finished(self, done: asyncio.Future[None]) -> None:
        self._running = None
        if not done.cancelled():
            done.exception()  # retrieved: each waiter gets it through its own await
