"""Dead letters: the original bytes and headers of a message no handler could take, and why."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext

from events.subjects import DLQ_STREAM, dlq_subject

__all__ = ["DeadLetter", "DeadLetterQueue", "decode_dead_letter"]

# Keeps a record under the server's default 1 MB max payload even after base64 (4/3).
MAX_ORIGINAL_BYTES = 512 * 1024


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    stream: str
    stream_seq: int
    subject: str
    consumer: str
    reason: str  # "undecodable" | "max_deliveries"
    error: str
    deliveries: int
    headers: dict[str, str]
    data_b64: str
    data_truncated: bool
    size: int
    recorded_at: datetime

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.data_b64)


_decoder = msgspec.json.Decoder(DeadLetter)


def decode_dead_letter(data: bytes) -> DeadLetter:
    return _decoder.decode(data)


@dataclass
class DeadLetterQueue:
    js: JetStreamContext
    consumer: str

    async def record(
        self,
        *,
        stream: str,
        stream_seq: int,
        subject: str,
        data: bytes,
        headers: Mapping[str, str],
        reason: str,
        error: str,
        deliveries: int,
    ) -> DeadLetter:
        letter = DeadLetter(
            id=f"{stream}-{stream_seq}-{self.consumer}",
            stream=stream,
            stream_seq=stream_seq,
            subject=subject,
            consumer=self.consumer,
            reason=reason,
            error=error[:4000],
            deliveries=deliveries,
            headers=dict(headers),
            data_b64=base64.b64encode(data[:MAX_ORIGINAL_BYTES]).decode(),
            data_truncated=len(data) > MAX_ORIGINAL_BYTES,
            size=len(data),
            recorded_at=datetime.now(UTC),
        )
        await self.js.publish(
            dlq_subject(self.consumer),
            msgspec.json.encode(letter),
            stream=DLQ_STREAM,
            headers={"Nats-Msg-Id": letter.id},
        )
        return letter
