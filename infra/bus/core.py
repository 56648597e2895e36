"""What the hot path needs of a NATS connection, and the nats-py connection behind it.

The consume loop, its pull requests and the event publisher send and receive plain core-NATS
messages only: pull requests, acknowledgements, publishes whose JetStream acknowledgement
comes back on an inbox. :class:`CoreBus` is that much; two connections provide it: the lean
wire client (infra/bus/wire.py, the default) and :class:`NatsPyCore` over nats-py (for what
the wire client does not do: TLS, nkeys and creds files). Provisioning, KV, object store and
every request/reply stay on nats-py either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the wire client (infra/bus/wire.py) runs without nats-py
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

__all__ = ["CoreBus", "Inbound", "InboundHandler", "NatsPyCore"]


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message as it arrived: ``headers`` as nats-py presents them (a status line becomes
    ``Status`` and ``Description``), ``reply`` empty when there is none."""

    subject: str
    reply: str
    headers: Mapping[str, str]
    data: bytes


# Called synchronously for every message of a subscription, in arrival order; it must not
# block (it hands work on to tasks).
InboundHandler = Callable[[Inbound], None]


class CoreBus(Protocol):
    @property
    def max_payload(self) -> int:
        """The largest message (headers and payload) the server accepts."""

    def new_inbox(self) -> str: ...

    async def subscribe(self, subject: str, handler: InboundHandler) -> object:
        """Subscribe ``handler`` to ``subject``; returns what ``unsubscribe`` takes."""

    async def unsubscribe(self, subscription: object) -> None: ...

    def on_reconnected(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each reconnect, once subscriptions are renewed."""

    async def publish(
        self,
        subject: str,
        payload: bytes,
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send one message. It leaves with the rest of this loop turn's writes; a broken
        connection may lose it (what the hot path publishes is acknowledged or retried)."""


class NatsPyCore:
    """:class:`CoreBus` over a nats-py connection (which keeps owning it)."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc

    @property
    def max_payload(self) -> int:
        return int(self.nc.max_payload)

    def new_inbox(self) -> str:
        return self.nc.new_inbox()

    async def subscribe(self, subject: str, handler: InboundHandler) -> object:
        async def on_message(msg: Msg) -> None:
            handler(Inbound(msg.subject, msg.reply, msg.headers or {}, msg.data))

        return await self.nc.subscribe(
            subject, cb=on_message, pending_msgs_limit=-1, pending_bytes_limit=-1
        )

    def on_reconnected(self, listener: Callable[[], None]) -> None:
        """Not told: nats-py owns its reconnect callback, set when it connected. Its users
        notice a reconnect by what stops arriving (pull requests forgotten after expiry)."""

    async def unsubscribe(self, subscription: object) -> None:
        if not self.nc.is_closed:
            await subscription.unsubscribe()  # type: ignore[attr-defined]

    async def publish(
        self,
        subject: str,
        payload: bytes,
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        await self.nc.publish(
            subject, payload, reply=reply, headers=dict(headers) if headers else None
        )
