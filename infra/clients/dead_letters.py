"""Working with dead letters: list, show, redrive and purge the records in AGORA_DLQ.

A record's id is its sequence in AGORA_DLQ. Records are the messages on
``agora.dlq.<consumer>``; redrive copies (``agora.dlq.redrive.<consumer>.<record>``, see
infra/bus/redrive.py) live in the same stream but are not records.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js.errors import APIError, NotFoundError

from events.errors import AgoraError
from events.subjects import DLQ_STREAM
from infra.bus.dlq import DeadLetter, decode_dead_letter
from infra.bus.reader import StreamReader
from infra.bus.redrive import (
    ORIGINAL_DELIVERIES,
    ORIGINAL_MSG_ID,
    ORIGINAL_STREAM,
    ORIGINAL_SUBJECT,
    REDRIVE_OF,
    REDRIVE_PREFIX,
    redrive_subject,
    redriven_consumer,
)

__all__ = [
    "DeadLetterError",
    "PurgeResult",
    "RedriveResult",
    "StoredDeadLetter",
    "b64",
    "describe",
    "get_dead_letter",
    "hexdump",
    "list_dead_letters",
    "parse_duration",
    "printable",
    "purge_older_than",
    "redrive",
    "redrive_all",
]

RECORDS = "agora.dlq.*"
WRONG_LAST_SEQUENCE = 10071
_RECORD_SUBJECT = re.compile(r"^agora\.dlq\.[^.]+$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class DeadLetterError(AgoraError):
    """A dead letter could not be shown, redriven or purged; the message says why."""


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    seq: int  # the record's id: its sequence in AGORA_DLQ
    stored_at: datetime
    letter: DeadLetter | None  # None: the message on agora.dlq.* is not a dead letter record
    problem: str = ""  # why ``letter`` is None
    redriven: bool = False
    redrive_seq: int | None = None  # the redrive copy's sequence (``get_dead_letter`` only)
    redriven_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RedriveResult:
    record_seq: int
    consumer: str  # the consumer the copy goes to
    copy_seq: int
    already: bool  # True: redriven before; nothing was published now


@dataclass(frozen=True, slots=True)
class PurgeResult:
    purged: int  # messages removed (records and redrive copies)
    kept_from_seq: int  # the oldest sequence kept


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w``."""
    match = _DURATION.match(text)
    if match is None:
        raise DeadLetterError(
            f"{text!r} is not a duration: a number and a unit, e.g. 30s, 15m, 12h, 7d, 2w"
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


def _record_of(seq: int, stored_at: datetime, data: bytes) -> StoredDeadLetter:
    try:
        return StoredDeadLetter(seq, stored_at, decode_dead_letter(data))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return StoredDeadLetter(seq, stored_at, None, problem=f"not a dead letter record: {exc}")


async def _redriven(nc: NatsClient) -> set[int]:
    """Sequences of the records that have a redrive copy."""
    info = await nc.jetstream().stream_info(DLQ_STREAM, subjects_filter=f"{REDRIVE_PREFIX}.>")
    ids = (subject.rsplit(".", 1)[1] for subject in info.state.subjects or {})
    return {int(token) for token in ids if token.isdigit()}


async def list_dead_letters(nc: NatsClient) -> list[StoredDeadLetter]:
    """Every record in AGORA_DLQ, oldest first."""
    redriven = await _redriven(nc)
    records: list[StoredDeadLetter] = []
    reader = await StreamReader(nc, DLQ_STREAM, RECORDS, batch=1_000, wire=False).open()
    try:
        while True:
            batch = await reader.next_batch(wait=False)
            for seq, payload, ts in zip(
                batch.seqs, batch.payloads, batch.timestamps_ns, strict=True
            ):
                stored = _record_of(seq, datetime.fromtimestamp(ts / 1e9, UTC), payload)
                if seq in redriven:
                    stored = dataclasses.replace(stored, redriven=True)
                records.append(stored)
            if not batch.seqs or batch.pending == 0:
                return records
    finally:
        await reader.close()


async def get_dead_letter(nc: NatsClient, seq: int) -> StoredDeadLetter:
    js = nc.jetstream()
    try:
        msg = await js.get_msg(DLQ_STREAM, seq)
    except NotFoundError:
        raise DeadLetterError(f"no dead letter {seq} in {DLQ_STREAM} (purged, or never)") from None
    if not _RECORD_SUBJECT.match(msg.subject or ""):
        raise DeadLetterError(
            f"{DLQ_STREAM} message {seq} is a redrive copy ({msg.subject}), not a dead letter"
        )
    stored = _record_of(seq, msg.time or datetime.now(UTC), msg.data or b"")
    if stored.letter is None:
        return stored
    copy = await _redrive_copy(nc, stored.letter, seq)
    if copy is None:
        return stored
    return dataclasses.replace(stored, redriven=True, redrive_seq=copy[0], redriven_at=copy[1])


async def _redrive_copy(
    nc: NatsClient, letter: DeadLetter, seq: int
) -> tuple[int, datetime | None] | None:
    subject = redrive_subject(redriven_consumer(letter.consumer), seq)
    js = nc.jetstream()
    # Asked this way first, a record never redriven costs no JetStream API error (status
    # shows those counts, and an operator should not see one per `dlq show`).
    if not (await js.stream_info(DLQ_STREAM, subjects_filter=subject)).state.subjects:
        return None
    try:
        msg = await js.get_last_msg(DLQ_STREAM, subject)
    except NotFoundError:
        return None
    return int(msg.seq or 0), msg.time


async def _original_bytes(nc: NatsClient, letter: DeadLetter) -> bytes:
    if not letter.data_truncated:
        return letter.data
    # The record kept only the start: the whole message may still be in its stream.
    try:
        msg = await nc.jetstream().get_msg(letter.stream, letter.stream_seq)
    except NotFoundError:
        raise DeadLetterError(
            f"the record keeps only the first {len(letter.data)} of {letter.size} bytes, and "
            f"{letter.stream} no longer has message {letter.stream_seq}: it cannot be redriven"
        ) from None
    return msg.data or b""


def _copy_headers(letter: DeadLetter, record_seq: int) -> dict[str, str]:
    original = letter.headers
    # Nats-* headers steered the original publish (dedup id, expected stream or sequence);
    # on the copy they would make AGORA_DLQ refuse or drop it. The id is kept under its own
    # name, and the consumer sees it again (infra/bus/redrive.py).
    headers = {k: v for k, v in original.items() if not k.startswith("Nats-")}
    msg_id = original.get(ORIGINAL_MSG_ID) or original.get("Nats-Msg-Id")
    if msg_id:
        headers[ORIGINAL_MSG_ID] = msg_id
    headers[ORIGINAL_STREAM] = original.get(ORIGINAL_STREAM, letter.stream)
    headers[ORIGINAL_SUBJECT] = original.get(ORIGINAL_SUBJECT, letter.subject)
    headers[REDRIVE_OF] = str(record_seq)
    # Every delivery so far, over earlier redrives too: the handler must see a redelivery.
    earlier = original.get(ORIGINAL_DELIVERIES, "0")
    headers[ORIGINAL_DELIVERIES] = str(
        (int(earlier) if earlier.isdigit() else 0) + letter.deliveries
    )
    headers["Nats-Msg-Id"] = f"redrive-{record_seq}"
    headers["Nats-Expected-Stream"] = DLQ_STREAM
    # Only if nothing was ever redriven for this record: the server makes redrive at-most-once.
    headers["Nats-Expected-Last-Subject-Sequence"] = "0"
    return headers


async def redrive(nc: NatsClient, seq: int) -> RedriveResult:
    """Hand record ``seq`` back to the consumer that gave up on it (once; infra/bus/redrive.py)."""
    stored = await get_dead_letter(nc, seq)
    letter = stored.letter
    if letter is None:
        raise DeadLetterError(f"dead letter {seq} cannot be redriven: {stored.problem}")
    consumer = redriven_consumer(letter.consumer)
    if stored.redrive_seq is not None:
        return RedriveResult(seq, consumer, stored.redrive_seq, already=True)
    subject = redrive_subject(consumer, seq)
    try:
        ack = await nc.jetstream().publish(
            subject,
            await _original_bytes(nc, letter),
            stream=DLQ_STREAM,
            headers=_copy_headers(letter, seq),
        )
    except APIError as exc:
        if exc.err_code != WRONG_LAST_SEQUENCE:
            raise DeadLetterError(f"redriving {seq} failed: {exc.description}") from None
        # Another redrive of the same record won the race.
        copy = await _redrive_copy(nc, letter, seq)
        return RedriveResult(seq, consumer, copy[0] if copy else 0, already=True)
    if ack.duplicate:  # the same redrive, resent inside the duplicate window
        copy = await _redrive_copy(nc, letter, seq)
        return RedriveResult(seq, consumer, copy[0] if copy else ack.seq, already=True)
    return RedriveResult(seq, consumer, ack.seq, already=False)


async def redrive_all(nc: NatsClient) -> list[RedriveResult]:
    """Every record not redriven yet (unreadable records are left alone)."""
    return [
        await redrive(nc, stored.seq)
        for stored in await list_dead_letters(nc)
        if stored.letter is not None and not stored.redriven
    ]


async def purge_older_than(nc: NatsClient, age: timedelta, *, now: datetime) -> PurgeResult:
    """Remove every AGORA_DLQ message stored before ``now - age``; nothing newer is touched."""
    cutoff_ns = int((now - age).timestamp() * 1e9)
    keep_from = 0
    last_seen = 0
    reader = await StreamReader(nc, DLQ_STREAM, "agora.dlq.>", batch=1_000, wire=False).open()
    try:
        while not keep_from:
            batch = await reader.next_batch(wait=False)
            for seq, ts in zip(batch.seqs, batch.timestamps_ns, strict=True):
                last_seen = seq
                if ts >= cutoff_ns:
                    keep_from = seq
                    break
            if not batch.seqs or batch.pending == 0:
                break
    finally:
        await reader.close()
    # Nothing new enough: purge only what was read, never what arrived since.
    keep_from = keep_from or last_seen + 1
    if keep_from <= 1:
        return PurgeResult(0, keep_from)
    try:
        reply = await nc.request(
            f"$JS.API.STREAM.PURGE.{DLQ_STREAM}", json.dumps({"seq": keep_from}).encode(), 10
        )
    except nats.errors.TimeoutError:
        raise DeadLetterError(f"the server did not answer the purge of {DLQ_STREAM}") from None
    answer = json.loads(reply.data)
    if "error" in answer:
        raise DeadLetterError(f"purging {DLQ_STREAM} failed: {answer['error'].get('description')}")
    return PurgeResult(int(answer.get("purged", 0)), keep_from)


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat(timespec="milliseconds")


def describe(stored: StoredDeadLetter, *, full: bool = False) -> dict[str, Any]:
    """The record as JSON-ready fields (``agora dlq list``/``show --json``, the dashboard);
    ``full``: also when it was recorded and redriven, its headers and the original bytes."""
    row: dict[str, Any] = {"id": stored.seq, "stored_at": _time(stored.stored_at)}
    letter = stored.letter
    if letter is None:
        return row | {"problem": stored.problem}
    row |= {
        "consumer": letter.consumer,
        "reason": letter.reason,
        "error": letter.error,
        "stream": letter.stream,
        "stream_seq": letter.stream_seq,
        "subject": letter.subject,
        "deliveries": letter.deliveries,
        "size": letter.size,
        "redriven": stored.redriven,
    }
    if not full:
        return row
    return row | {
        "recorded_at": _time(letter.recorded_at),
        "redrive_seq": stored.redrive_seq,
        "redriven_at": _time(stored.redriven_at) or None,
        "headers": letter.headers,
        "data_truncated": letter.data_truncated,
        "data_text": printable(letter.data),
        "data_b64": b64(letter.data),
    }


def printable(data: bytes) -> str | None:
    """The bytes as text when they are UTF-8 without control characters, else None."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        return None
    return text


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hexdump(data: bytes, *, limit: int = 4096) -> list[str]:
    """``xxd``-style lines: offset, 16 bytes in hex, the printable ASCII among them."""
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk.hex(' '):<47}  |{ascii_}|")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit} more byte(s): see the base64 below")
    return lines
