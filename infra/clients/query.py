"""Asking the projector for SQL over NATS (``agora.query``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient

from events.errors import AgoraError
from events.subjects import EVENTS_STREAM, QUERY_SUBJECT
from projections.protocol import (
    PROJECTOR_CONTROL,
    QueryReply,
    QueryRequest,
    decode_reply,
    encode,
)

__all__ = ["QueryFailedError", "ask", "projector_caught_up", "projector_status"]


class QueryFailedError(AgoraError):
    """The projector refused or could not answer a query; the message says why."""


async def ask(
    nc: NatsClient,
    sql: str,
    *,
    max_rows: int = 10_000,
    min_seq: int = 0,
    timeout_s: float = 30.0,
    params: Sequence[str | int | float | bool | None] = (),
) -> QueryReply:
    """``sql`` answered by the projector; ``params`` fill its ``?`` placeholders (a value a
    user typed belongs there, never in the SQL text)."""
    request = QueryRequest(sql=sql, max_rows=max_rows, min_seq=min_seq, params=list(params))
    try:
        msg = await nc.request(QUERY_SUBJECT, encode(request), timeout=timeout_s)
    except nats.errors.NoRespondersError:
        raise QueryFailedError(
            "no projector answers on agora.query: `agora up` runs one, or start "
            "`agora service projector`"
        ) from None
    except nats.errors.TimeoutError:
        raise QueryFailedError(f"the projector did not answer within {timeout_s}s") from None
    reply = decode_reply(msg.data)
    if reply.error:
        raise QueryFailedError(reply.error)
    return reply


async def projector_status(nc: NatsClient, action: str = "status") -> dict[str, object]:
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
