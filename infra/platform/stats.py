"""What a running service reports about itself, as a NATS micro service.

Every service process registers ``agora-<service>`` with nats-py's ``nats.micro``, so the
standard ``$SRV.PING|INFO|STATS[.agora-<service>]`` subjects answer (``nats micro ls`` and
``nats micro stats agora-executor`` work too). Its one endpoint, ``agora.<service>.stats``
(request/reply, one replica answers), returns the same counters as the ``data`` of the
``STATS`` reply, where every replica answers: ``agora status`` asks ``$SRV.STATS`` and adds
the replicas up.

The counters are per consumer (``<stream>/<durable>``) and count what the handlers did, seen
from the outside of each handler: handled (returned, so the message was acked), failed
(raised: retried later or dead-lettered), redelivered (a delivery that was not the first),
in flight (running now).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

from infra.bus.consume import Delivery, Handler
from infra.bus.replies import InboxOnlyClient

__all__ = [
    "MICRO_PREFIX",
    "ConsumerCounters",
    "ServiceCounters",
    "collect_stats",
    "micro_name",
    "serve_stats",
    "stats_subject",
]

MICRO_PREFIX = "agora-"
STATS_ALL = "$SRV.STATS"


def micro_name(service: str) -> str:
    return f"{MICRO_PREFIX}{service}"


def stats_subject(service: str) -> str:
    return f"agora.{service}.stats"


@dataclass
class ConsumerCounters:
    handled: int = 0
    failed: int = 0
    redelivered: int = 0
    in_flight: int = 0
    last_error: str = ""


@dataclass
class ServiceCounters:
    """One process's counters. ``track`` wraps a handler so that every call is counted."""

    service: str
    clock: Callable[[], float] = time.monotonic
    consumers: dict[str, ConsumerCounters] = field(default_factory=dict)
    _started: float = field(init=False)

    def __post_init__(self) -> None:
        self._started = self.clock()

    def track(self, stream: str, durable: str, handler: Handler) -> Handler:
        counters = self.consumers.setdefault(f"{stream}/{durable}", ConsumerCounters())

        async def counted(delivery: Delivery) -> None:
            if delivery.redelivered:
                counters.redelivered += 1
            counters.in_flight += 1
            try:
                await handler(delivery)
            except Exception as exc:  # not a cancellation: that is a drain, not a failure
                counters.failed += 1
                counters.last_error = f"{type(exc).__name__}: {exc}"[:500]
                raise
            else:
                counters.handled += 1
            finally:
                counters.in_flight -= 1

        return counted

    def snapshot(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "uptime_s": round(self.clock() - self._started, 3),
            "consumers": {name: asdict(c) for name, c in self.consumers.items()},
        }


async def serve_stats(nc: NatsClient, counters: ServiceCounters, version: str) -> Service:
    """Register the micro service; stop it with ``await service.stop()``."""

    async def answer(request: Request) -> None:
        await request.respond(msgspec.json.encode(counters.snapshot()))

    service = await add_service(
        # nats.micro's own $SRV handlers answer only onto inboxes too (infra/bus/replies.py).
        InboxOnlyClient(nc),  # type: ignore[arg-type]
        name=micro_name(counters.service),
        version=version,
        description=f"agora {counters.service}: consumer counters",
        metadata={"service": counters.service},
        stats_handler=lambda _endpoint: counters.snapshot(),
    )
    await service.add_endpoint(
        name="stats", subject=stats_subject(counters.service), handler=answer
    )
    return service


async def collect_stats(
    nc: NatsClient, *, timeout_s: float = 1.0, quiet_s: float = 0.25
) -> list[dict[str, Any]]:
    """Every agora service process's ``STATS`` reply (scatter-gather on ``$SRV.STATS``).

    Nobody knows in advance how many replicas run, so replies are gathered until none has
    come for ``quiet_s`` (or ``timeout_s`` in all).
    """
    replies: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    async def on_reply(msg: Msg) -> None:
        with contextlib.suppress(msgspec.DecodeError):
            reply = msgspec.json.decode(msg.data)
            if isinstance(reply, dict) and str(reply.get("name", "")).startswith(MICRO_PREFIX):
                replies.append(reply)
        arrived.set()

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_reply)
    try:
        await nc.publish(STATS_ALL, b"", reply=inbox)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            arrived.clear()
            waited = quiet_s if replies else left
            try:
                await asyncio.wait_for(arrived.wait(), min(waited, left))
            except TimeoutError:
                if replies:
                    break
    finally:
        await sub.unsubscribe()
    return replies
