"""Asking the projector for SQL over NATS (``agora.query``), over nats-py or the wire client.

nats-py is imported where it is used: `agora query` asks over the wire client and starts
without it (~25 ms)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from events.errors import AgoraError
from events.subjects import EVENTS_STREAM, QUERY_SUBJECT
from projections.protocol import (
    PROJECTOR_CONTROL,
    QueryReply,
    QueryRequest,
    decode_reply,
    encode,
)

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

    from infra.bus.wire import WireClient

__all__ = [
    "QueryFailedError",
    "ask",
    "projector_caught_up",
    "projector_status",
]

Params = Sequence[str | int | float | bool | None]
# The status the server answers a request with when no one listens on its subject.
_NO_RESPONDERS = "503"


class QueryFailedError(AgoraError):
    """The projector refused or could not answer a query; the message says why."""


async def ask(
    connection: NatsClient | WireClient,
    sql: str,
    *,
    max_rows: int = 10_000,
    min_seq: int = 0,
    timeout_s: float = 30.0,
    params: Params = (),
) -> QueryReply:
    """``sql`` answered by the projector, over nats-py or the lean wire client alike;
    ``params`` fill its ``?`` placeholders (a value a user typed belongs there, never in the
    SQL text)."""
    request = encode(QueryRequest(sql=sql, max_rows=max_rows, min_seq=min_seq, params=list(params)))
    return _answer(await _send(connection, request, timeout_s))


async def _send(connection: NatsClient | WireClient, request: bytes, timeout_s: float) -> bytes:
    """The reply's bytes; no projector, or none in time, is :class:`QueryFailedError`."""
    from infra.bus.wire import WireClient

    if isinstance(connection, WireClient):
        try:
            reply = await connection.request(QUERY_SUBJECT, request, timeout_s=timeout_s)
        except TimeoutError:
            raise _no_answer(timeout_s) from None
        if reply.headers.get("Status") == _NO_RESPONDERS:
            raise _no_projector()
        return reply.data
    import nats.errors

    try:
        msg = await connection.request(QUERY_SUBJECT, request, timeout=timeout_s)
    except nats.errors.NoRespondersError:
        raise _no_projector() from None
    except nats.errors.TimeoutError:
        raise _no_answer(timeout_s) from None
    data: bytes = msg.data
    return data


def _answer(data: bytes) -> QueryReply:
    reply = decode_reply(data)
    if reply.error:
        raise QueryFailedError(reply.error)
    return reply


def _no_projector() -> QueryFailedError:
    return QueryFailedError(
        "no projector answers on agora.query: `agora up` runs one, or start "
        "`agora service projector`"
    )


def _no_answer(timeout_s: float) -> QueryFailedError:
    return QueryFailedError(f"the projector did not answer within {timeout_s}s")


async def projector_status(nc: NatsClient, action: str = "status") -> dict[str, object]:
    import nats.errors

    try:
        msg = await nc.request(PROJECTOR_CONTROL, action.encode(), timeout=10)
    except nats.errors.NoRespondersError:
        raise QueryFailedError("no projector is running") from None
    status = msgspec.json.decode(msg.data)
    if not isinstance(status, dict):
        raise QueryFailedError(f"unexpected answer from the projector: {status!r}")
    if "error" in status:
        raise QueryFailedError(str(status["error"]))
    return status


async def projector_caught_up(nc: NatsClient, *, timeout_s: float = 60.0) -> int:
    """Wait until the projector has applied the stream as it is now; returns that sequence."""
    from infra.bus.reader import stream_last_seq

    target = await stream_last_seq(nc, EVENTS_STREAM)
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(QueryFailedError):  # a projector still starting up
            if int(str((await projector_status(nc))["last_seq"])) >= target:
                return target
        if time.monotonic() > deadline:
            raise QueryFailedError(f"the projector did not reach sequence {target} in {timeout_s}s")
        await asyncio.sleep(0.05)  # polling the projector's checkpoint, with a deadline
