"""This replica's pin on a pinned consumer: a priority group with the ``pinned_client`` policy.

The server gives every message of such a consumer to one client at a time, the pinned one: it
picks a pull request that names the group but no pin id, and from then on sends the pin id
(header ``Nats-Pin-Id``) with every delivery. The pinned client must name that id in each later
request; requests without it (the standbys') wait, unserved. A pin lapses when no request
carrying it arrives for the consumer's priority timeout, or when its holder hands it on
(``$JS.API.CONSUMER.UNPIN``); the next request without an id is pinned then. A request that
still names a lapsed pin is refused with status 423.

Pinning is not exclusivity (a replica paused past the timeout resumes believing it is pinned),
so what a pin guards is fenced as well (infra/bus/lease.py). :meth:`Pin.confirmed` asks the
server, for the moments that decide who may take that fence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient

from infra.logging import get_logger

__all__ = ["PIN_ID", "Pin"]

log = get_logger("agora.pin")

PIN_ID = "Nats-Pin-Id"


@dataclass
class Pin:
    nc: NatsClient
    stream: str
    consumer: str
    group: str
    id: str = ""  # the pin this replica holds; empty while it stands by
    # Called when a pin this replica held is gone (lapsed, or replaced by a newer one).
    _on_lost: list[Callable[[], None]] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return bool(self.id)

    def on_lost(self, listener: Callable[[], None]) -> None:
        self._on_lost.append(listener)

    def seen(self, pin_id: str) -> None:
        """A delivery arrived under ``pin_id``: this replica is pinned (perhaps anew)."""
        if pin_id == self.id:
            return
        previous, self.id = self.id, pin_id
        log.warning("pinned", consumer=self.consumer, group=self.group, previous=previous or None)
        if previous:
            # Pinned afresh: another replica may have been pinned in between.
            self._lost()

    def refused(self) -> None:
        """The server refused the pin this replica named (status 423): it has lapsed."""
        if self.id:
            log.warning("unpinned", consumer=self.consumer, group=self.group)
            self.id = ""
            self._lost()

    async def confirmed(self) -> bool:
        """Whether the server still has this replica pinned (one request)."""
        if not self.id:
            return False
        reply = await self.nc.request(f"$JS.API.CONSUMER.INFO.{self.stream}.{self.consumer}", b"")
        groups: list[dict[str, str]] = json.loads(reply.data).get("priority_groups") or []
        pinned = {g.get("group"): g.get("pinned_client_id") for g in groups}
        if pinned.get(self.group) == self.id:
            return True
        self.refused()
        return False

    async def hand_on(self) -> None:
        """Give the pin up now (a stopping replica), so a standby need not wait out the timeout."""
        if not self.id:
            return
        self.id = ""
        try:
            await self.nc.request(
                f"$JS.API.CONSUMER.UNPIN.{self.stream}.{self.consumer}",
                json.dumps({"group": self.group}).encode(),
                timeout=2.0,
            )
        except Exception as exc:  # the pin lapses by itself after the timeout
            log.warning("unpin_failed", error=repr(exc))

    def _lost(self) -> None:
        for listener in self._on_lost:
            listener()
