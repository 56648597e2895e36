"""Keeps memory's read model current: snapshot at start, then the log's memory events.

Every replica follows memory's events of every goal (``MEMORY_EVENT_TYPES``: completed tasks,
completed goals, lessons, forgets, compactions), in stream order, through an ephemeral
consumer (no durable state of its own: the position is the state's ``applied_seq``). At start
it loads the latest snapshot from the object store and reads only the events after the
sequence it covers; a missing or unreadable snapshot means a full replay (with a warning for
an unreadable one). It saves a snapshot every ``snapshot_every`` events and when it stops
cleanly.

Once caught up, each read is a pull request that lingers ``FOLLOW_LINGER_S`` at the server:
new memory events stream into it as they are stored and are folded when it ends, so a new
item is in the index within that time. Under load one request gathers every memory event
of that time (hundreds of them), where ringing a core subscription per stored event cost a
delivery to memory and a read per ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient

from events.codec import decode_event
from events.errors import AgoraError, DecodeError
from events.model import Event
from events.subjects import EVENTS_STREAM, event_type_filter
from infra.bus.reader import RawBatch, StreamReader
from infra.bus.snapshots import SnapshotStore
from infra.logging import get_logger
from services.memory.longterm import Item
from services.memory.state import (
    MEMORY_EVENT_TYPES,
    MemoryState,
    SnapshotError,
    decode_snapshot,
    encode_snapshot,
)

__all__ = ["SNAPSHOT_NAME", "IndexFollower", "MemoryLagError", "memory_reader"]

log = get_logger("agora.memory")
SNAPSHOT_NAME = "memory-index"
# How long a caught-up read waits at the server for new memory events: the most a new item
# waits before it is in the index (and the follower's idle cost: one request per this time).
FOLLOW_LINGER_S = 0.05
ItemsAdded = Callable[[list[Item]], Awaitable[None]]


class MemoryLagError(AgoraError):
    """Memory's read model did not catch up with the log in time (the input is retried)."""


class IndexFollower:
    def __init__(
        self,
        nc: NatsClient,
        *,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int,
        items_added: ItemsAdded | None = None,
        applied: Callable[[], None] | None = None,
        resolve: Callable[[Event], Awaitable[Event]] | None = None,
    ) -> None:
        self.state = MemoryState()
        # Puts large outputs back in place of their references (infra/bus/outputs.py).
        self._resolve = resolve
        self._nc = nc
        self.snapshots = snapshots
        self._snapshot_every = snapshot_every
        self._items_added = items_added
        # Told after every batch folded in: the state may call for decisions now.
        self._applied = applied
        self.snapshot_seq = 0  # what the loaded snapshot covered (0: none)
        self.replayed_at_start = 0  # events folded after it, before serving
        self._since_snapshot = 0
        # The tail's current consumer and how many events it delivered that are folded.
        self._consumer: str | None = None
        self._from_consumer = 0
        self._returns = 0  # answered pull requests
        self._drained_at = 0  # the last answered pull that left nothing pending
        self._progress = asyncio.Condition()
        self._stopped = False
        # The consumer-info request in flight (or last made): consumer, when sent, its answer.
        self._asking: tuple[str, float, asyncio.Future[int]] | None = None

    @staticmethod
    def filters() -> tuple[str, tuple[str, ...]]:
        first, *more = (event_type_filter(t) for t in MEMORY_EVENT_TYPES)
        return first, tuple(more)

    async def load(self) -> None:
        """The latest snapshot, then every memory event after it, before anything is served."""
        started = time.monotonic()
        await self._load_snapshot()
        reader = await memory_reader(self._nc, self.state.applied_seq + 1).open()
        try:
            while True:
                batch = await reader.next_batch(wait=False)
                self.replayed_at_start += await self._apply(batch)
                if not batch.seqs or batch.pending == 0:
                    break
        finally:
            await reader.close()
        self._since_snapshot = self.replayed_at_start
        log.info(
            "memory_loaded",
            snapshot_seq=self.snapshot_seq,
            replayed=self.replayed_at_start,
            items=len(self.state.long_term),
            seconds=round(time.monotonic() - started, 3),
        )

    async def _load_snapshot(self) -> None:
        if self.snapshots is None:
            return
        data = await self.snapshots.load(SNAPSHOT_NAME)
        if data is None:
            log.info("memory_snapshot_missing_full_replay")
            return
        try:
            state = decode_snapshot(data)
        except SnapshotError as exc:
            log.warning("memory_snapshot_unreadable_full_replay", error=str(exc))
            return
        self.state = state
        self.snapshot_seq = state.applied_seq
        if self._items_added is not None:
            await self._items_added(list(state.long_term.items.values()))

    async def follow(self, stop: asyncio.Event) -> None:
        """Fold new memory events as they are appended, until ``stop``; then snapshot."""
        while not stop.is_set():
            try:
                await self._tail(stop)
            except Exception as exc:
                log.exception("memory_follow_failed_will_resume", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
        # Handlers still draining must not wait for a follower that is gone: they fail now
        # and their input is redelivered to the next memory.
        async with self._progress:
            self._stopped = True
            self._progress.notify_all()
        await self.save_snapshot()

    async def _tail(self, stop: asyncio.Event) -> None:
        reader = await memory_reader(self._nc, self.state.applied_seq + 1).open()
        self._consumer, self._from_consumer = reader.consumer, 0
        try:
            while not stop.is_set():
                # Returns at once with a full batch; caught up, after FOLLOW_LINGER_S with
                # whatever was stored meanwhile.
                batch = await reader.next_batch(wait=True)
                applied = await self._apply(batch)
                self._since_snapshot += applied
                async with self._progress:
                    if reader.consumer != self._consumer:  # recreated: its count starts over
                        self._consumer, self._from_consumer = reader.consumer, 0
                    self._from_consumer += applied
                    self._returns += 1
                    if not batch.seqs or batch.pending == 0:
                        self._drained_at = self._returns
                    self._progress.notify_all()
                if self._since_snapshot >= self._snapshot_every:
                    await self.save_snapshot()
        finally:
            async with self._progress:
                self._consumer = None
                self._progress.notify_all()
            await reader.close()

    async def _apply(self, batch: RawBatch) -> int:
        state = self.state
        first_new = state.long_term.next_item_id
        for seq, payload in zip(batch.seqs, batch.payloads, strict=True):
            try:
                event = decode_event(payload)
            except DecodeError as exc:
                # The log is append-only: skipping an unreadable event is all memory can do.
                log.exception("memory_event_undecodable", stream_seq=seq, error=str(exc))
                continue
            if self._resolve is not None:
                event = await self._resolve(event)
            state.apply(seq, event)
        if batch.seqs:
            state.applied_seq = max(state.applied_seq, batch.seqs[-1])
        if self._items_added is not None and state.long_term.next_item_id > first_new:
            items = state.long_term.items
            added = [items[i] for i in range(first_new, state.long_term.next_item_id) if i in items]
            await self._items_added(added)
        if batch.seqs and self._applied is not None:
            self._applied()
        return len(batch.seqs)

    async def save_snapshot(self) -> None:
        if self.snapshots is None or self._since_snapshot == 0:
            return
        data = encode_snapshot(self.state)
        try:
            await self.snapshots.save(SNAPSHOT_NAME, data)
        except Exception as exc:
            # The next interval (or stop) tries again; a missing snapshot only costs replay time.
            log.warning("memory_snapshot_failed", error=repr(exc))
            return
        self._since_snapshot = 0
        log.info("memory_snapshot_saved", seq=self.state.applied_seq, bytes=len(data))

    async def wait_applied(self, seq: int, timeout_s: float) -> None:
        """Until the event at stream sequence ``seq`` (a memory event) has been folded."""
        await self._wait(lambda: self.state.applied_seq >= seq, timeout_s)

    async def wait_current(self, timeout_s: float) -> None:
        """Until every memory event appended before this call has been folded.

        The reader's consumer knows how many messages it has delivered and how many are still
        pending: once the follower has folded that many from this consumer, it is current (one
        round trip when memory is current, and no chasing a log that keeps growing). If the
        consumer is recreated meanwhile, or cannot be asked, the proof is a pull request that
        was answered with nothing pending and was sent after this call began.
        """
        began = time.monotonic()
        deadline = began + timeout_s
        consumer = self._consumer
        if consumer is not None:
            try:
                target = await asyncio.wait_for(self._consumer_total(consumer, began), timeout_s)
            except Exception as exc:  # the consumer is being recreated: use the other proof
                log.info("memory_consumer_info_failed", error=repr(exc))
            else:
                await self._wait(
                    lambda: self._consumer != consumer or self._from_consumer >= target,
                    max(0.0, deadline - time.monotonic()),
                )
                if self._consumer == consumer:
                    return
        mark = self._returns + 2
        await self._wait(lambda: self._drained_at >= mark, max(0.0, deadline - time.monotonic()))

    async def _consumer_total(self, consumer: str, since: float) -> int:
        """Delivered + pending of ``consumer``, from an info request sent at or after ``since``.

        Concurrent callers share one request (a burst of context requests costs one or two
        round trips to the JetStream API, not one each).
        """
        while True:
            asking = self._asking
            if asking is not None and asking[0] == consumer and asking[1] >= since:
                return await asyncio.shield(asking[2])
            if asking is not None and not asking[2].done():
                await asyncio.wait({asking[2]})  # sent too early for us: let it end, then ask
                continue
            task = asyncio.ensure_future(self._ask_consumer_total(consumer))
            self._asking = (consumer, time.monotonic(), task)

    async def _ask_consumer_total(self, consumer: str) -> int:
        info = await self._nc.jetstream().consumer_info(EVENTS_STREAM, consumer)
        delivered = int(info.delivered.consumer_seq or 0) if info.delivered else 0
        return delivered + int(info.num_pending or 0)

    async def _wait(self, condition: Callable[[], bool], timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s), self._progress:
                await self._progress.wait_for(lambda: self._stopped or condition())
                if not condition():
                    raise MemoryLagError("memory is stopping; the input will be redelivered")
        except TimeoutError:
            raise MemoryLagError(
                f"memory's index did not catch up with the log within {timeout_s}s "
                f"(at sequence {self.state.applied_seq})"
            ) from None


def memory_reader(nc: NatsClient, start_seq: int) -> StreamReader:
    """A reader of every goal's memory events from ``start_seq``, in stream order."""
    first, more = IndexFollower.filters()
    return StreamReader(
        nc,
        EVENTS_STREAM,
        first,
        start_seq=start_seq,
        batch=5_000,
        linger_s=FOLLOW_LINGER_S,
        more_filter_subjects=more,
    )
