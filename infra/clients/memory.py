"""Asking the memory service (``agora.memory.query``) and sending it forget commands."""

from __future__ import annotations

import uuid

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient

from events.errors import AgoraError
from events.memory_commands import INTAKE_MEMORY_FORGET
from events.subjects import INTAKE_STREAM
from services.memory.protocol import (
    MEMORY_QUERY,
    MemoryReply,
    MemoryRequest,
    decode_reply,
    encode,
)

__all__ = ["MemoryQueryError", "ask_memory", "send_forget"]


class MemoryQueryError(AgoraError):
    """Memory refused or could not answer a request; the message says why."""


async def ask_memory(
    nc: NatsClient, request: MemoryRequest, *, timeout_s: float = 10.0
) -> MemoryReply:
    try:
        msg = await nc.request(MEMORY_QUERY, encode(request), timeout=timeout_s)
    except nats.errors.NoRespondersError:
        raise MemoryQueryError(
            "no memory service answers on agora.memory.query: `agora up` runs one, or start "
            "`agora service memory`"
        ) from None
    except nats.errors.TimeoutError:
        raise MemoryQueryError(f"the memory service did not answer within {timeout_s}s") from None
    reply = decode_reply(msg.data)
    if reply.error:
        raise MemoryQueryError(reply.error)
    return reply


async def send_forget(
    nc: NatsClient,
    *,
    key: str | None = None,
    goal_id: str | None = None,
    reason: str = "",
    command_id: str | None = None,
) -> str:
    """Publish a forget command for ``key`` or ``goal_id``; returns its command id."""
    if (key is None) == (goal_id is None):
        raise MemoryQueryError("forget exactly one thing: a KEY, or --goal ID")
    command_id = command_id or f"c-{uuid.uuid4()}"
    body = {"command_id": command_id, "reason": reason}
    body.update({"key": key} if key is not None else {"goal_id": str(goal_id)})
    await nc.jetstream().publish(
        INTAKE_MEMORY_FORGET,
        msgspec.json.encode(body),
        stream=INTAKE_STREAM,
        headers={"Nats-Msg-Id": command_id},
    )
    return command_id
