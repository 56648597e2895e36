"""Asking memory directly over core NATS (``agora.memory.query``, queue group ``memory``).

Request: ``{"op": "search", "query": "launch code", "k": 5, "goal_id": null, "kinds": [],
"metadata": {}, "since": null, "until": null, "as_of": null}``, ``{"op": "stats"}`` or
``{"op": "working", "goal_id": "g-7"}``. Reply: ``{"items": [...]}``, ``{"stats": {...}}``,
``{"working": {...}}``, or ``{"error": "..."}``. Any language can ask; the CLI is one client.
These reads do not enter the log: they answer from the replica's current state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from events.model import MemoryItem
from events.untrusted_json import decode_json

__all__ = [
    "MEMORY_QUERY",
    "MEMORY_QUERY_GROUP",
    "MemoryReply",
    "MemoryRequest",
    "decode_reply",
    "decode_request",
    "encode",
]

MEMORY_QUERY = "agora.memory.query"
MEMORY_QUERY_GROUP = "memory"


class MemoryRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    op: Literal["search", "stats", "working"]
    query: str = ""
    k: int = 5
    goal_id: str | None = None
    kinds: tuple[str, ...] = ()
    metadata: dict[str, Any] = {}
    since: datetime | None = None
    until: datetime | None = None
    # Rank recency as if asked at this time (default: now), e.g. to compare answers over time.
    as_of: datetime | None = None


class MemoryReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    items: list[MemoryItem] = []
    stats: dict[str, Any] = {}
    working: dict[str, Any] = {}
    error: str | None = None


_request_decoder = msgspec.json.Decoder(MemoryRequest)
_reply_decoder = msgspec.json.Decoder(MemoryReply)
_encoder = msgspec.json.Encoder()


def encode(value: object) -> bytes:
    return _encoder.encode(value)


def decode_request(data: bytes) -> MemoryRequest:
    return decode_json(_request_decoder, data)


def decode_reply(data: bytes) -> MemoryReply:
    return decode_json(_reply_decoder, data)
