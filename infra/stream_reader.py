"""Reading a stream's raw messages in order, as fast as nats-py allows.

The projector and replay read the whole event log. nats-py's JetStream consumer API manages
~25-35k messages/s on this 2-core machine, while its core protocol layer reaches ~100k/s. So
this reader talks to the JetStream API directly: one ephemeral ack-none consumer, one inbox
subscription whose callback only appends, one pull request (``CONSUMER.MSG.NEXT``) per batch.
The stream sequence and timestamp come from each message's reply subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from infra.logging import get_logger

__all__ = ["RawBatch", "StreamReader", "reply_position", "stream_last_seq"]

log = get_logger("agora.stream_reader")

STATUS = "Status"
# 404: nothing (more) right now; 408: the request expired; 409: consumer gone or similar.
_END_OF_REQUEST = {"404", "408"}


def reply_position(reply: str) -> tuple[int, int, int]:
    """(stream sequence, timestamp ns, pending) from a JetStream ack reply subject.

    v1: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    v2: $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>...
    """
    tokens = reply.split(".")
    base = 5 if len(tokens) == 9 else 7
    return int(tokens[base]), int(tokens[base + 2]), int(tokens[base + 3])


@dataclass(slots=True)
class RawBatch:
    seqs: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    timestamps_ns: list[int] = field(default_factory=list)
    pending: int = 0  # messages left in the stream after this batch, when it was read

    def __len__(self) -> int:
        return len(self.seqs)

    def cut_after(self, seq: int) -> None:
        """Drop every message after stream sequence ``seq``."""
        self.keep(sum(1 for s in self.seqs if s <= seq))

    def keep(self, count: int) -> None:
        """Keep only the first ``count`` messages."""
        del self.seqs[count:], self.payloads[count:], self.timestamps_ns[count:]


@dataclass
class StreamReader:
    nc: NatsClient
    stream: str
    filter_subject: str
    start_seq: int = 1
    batch: int = 10_000
    # How long a pull request waits for messages when the reader has caught up: the most a
    # new event waits before a tailing projector sees it.
    linger_s: float = 0.1
    _consumer: str | None = None
    _inbox: str = ""
    _sub: object = None
    _replies: list[str] = field(default_factory=list)
    _payloads: list[bytes] = field(default_factory=list)
    _done: asyncio.Event = field(default_factory=asyncio.Event)
    _wanted: int = 0
    _broken: bool = False
    _next_seq: int = 0

    async def open(self) -> StreamReader:
        self._next_seq = self.start_seq
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(
            self._inbox, cb=self._on_message, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        await self._create_consumer()
        return self

    async def _create_consumer(self) -> None:
        js = self.nc.jetstream()
        info = await js.add_consumer(
            self.stream,
            ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(1, self._next_seq),
                ack_policy=AckPolicy.NONE,
                filter_subject=self.filter_subject,
                mem_storage=True,
                inactive_threshold=60.0,
                max_waiting=1,
            ),
        )
        self._consumer = info.name
        self._broken = False

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers
        status = headers.get(STATUS) if headers else None
        if status is None:
            self._replies.append(msg.reply)
            self._payloads.append(msg.data)
            if len(self._payloads) >= self._wanted:
                self._done.set()
        elif status in _END_OF_REQUEST:
            self._done.set()
        elif status != "100":  # 100 is a heartbeat
            log.warning("stream_reader_status", status=status, description=headers)
            self._broken = True
            self._done.set()

    async def next_batch(self, *, wait: bool = True) -> RawBatch:
        """The next messages in stream order (possibly none). ``wait``: linger for new ones."""
        if self._broken:
            await self._create_consumer()
        self._replies, self._payloads = [], []
        self._wanted = self.batch
        self._done.clear()
        request = {"batch": self.batch}
        if wait:
            request["expires"] = int(self.linger_s * 1e9)
        else:
            request["no_wait"] = True
        await self.nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self._consumer}",
            json.dumps(request).encode(),
            reply=self._inbox,
        )
        try:
            await asyncio.wait_for(self._done.wait(), self.linger_s + 5.0)
        except TimeoutError:
            # No answer at all: the server restarted or the consumer vanished. Start again from
            # where we are; what arrived so far is still good.
            self._broken = True
        return self._take()

    def _take(self) -> RawBatch:
        result = RawBatch(payloads=self._payloads)
        for reply in self._replies:
            seq, ts, pending = reply_position(reply)
            result.seqs.append(seq)
            result.timestamps_ns.append(ts)
            result.pending = pending
        self._replies, self._payloads = [], []
        if result.seqs:
            self._next_seq = result.seqs[-1] + 1
        return result

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()  # type: ignore[attr-defined]
        if self._consumer:
            with contextlib.suppress(NotFoundError, nats.errors.Error):
                await self.nc.jetstream().delete_consumer(self.stream, self._consumer)


async def stream_last_seq(nc: NatsClient, stream: str) -> int:
    info = await nc.jetstream().stream_info(stream)
    return int(info.state.last_seq)
