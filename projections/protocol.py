"""The query protocol on ``agora.query`` (request/reply, queue group ``projector``).

Request: ``{"sql": "SELECT …", "max_rows": 1000, "min_seq": 0, "params": []}``; with ``min_seq``
the projector answers once its views include the event at that stream sequence (read your
writes: a client that saw ``goal_completed`` at sequence N asks with ``min_seq`` N). ``params``
are the values of the statement's ``?`` (or ``$1``…) placeholders: a value a user typed goes
there, never into the SQL text.
Reply: ``{"columns": […], "rows": [[…]], "truncated": false, "elapsed_ms": 1.2,
"last_seq": 4711}`` or ``{"error": "…", "refused": true}``.
Any language can ask; the CLI is one client.
"""

from __future__ import annotations

from typing import Any

import msgspec

from events.untrusted_json import decode_json

__all__ = [
    "PROJECTOR_CONTROL",
    "QUERY_GROUP",
    "QueryReply",
    "QueryRequest",
    "decode_reply",
    "decode_request",
    "encode",
]

QUERY_GROUP = "projector"
PROJECTOR_CONTROL = "agora.projector.control"


class QueryRequest(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    sql: str
    max_rows: int = 10_000
    min_seq: int = 0
    # Values of the statement's placeholders, bound by DuckDB (never spliced into the text).
    params: list[str | int | float | bool | None] = []


class QueryReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    columns: list[str] = []
    rows: list[list[Any]] = []
    truncated: bool = False
    elapsed_ms: float = 0.0
    last_seq: int = 0
    error: str | None = None
    refused: bool = False


def _fallback(value: Any) -> Any:
    # DuckDB hands back Decimal, UUID, timedelta, dates…: readable strings keep JSON portable.
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_fallback, decimal_format="number")
_request_decoder = msgspec.json.Decoder(QueryRequest)
_reply_decoder = msgspec.json.Decoder(QueryReply)


def encode(value: object) -> bytes:
    return _encoder.encode(value)


def decode_request(data: bytes) -> QueryRequest:
    return decode_json(_request_decoder, data)


def decode_reply(data: bytes) -> QueryReply:
    return decode_json(_reply_decoder, data)
