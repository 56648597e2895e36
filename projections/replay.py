"""Rebuilding projections from the event stream: into a file, to a point in time or sequence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client as NatsClient

from events.subjects import EVENTS_STREAM, goal_events_filter
from infra.bus.outputs import OutputStore
from infra.bus.reader import RawBatch, StreamReader, stream_last_seq
from projections.pipeline import OrderedApplier
from projections.store import ProjectionStore

__all__ = ["ROW_GROUP_ROWS", "ReplayProgress", "replay_into"]


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    applied: int  # events written so far
    at_seq: int  # the last stream sequence read
    target_seq: int  # where the replay stops
    elapsed_s: float

    @property
    def events_per_s(self) -> float:
        return self.applied / self.elapsed_s if self.elapsed_s > 0 else 0.0


# DuckDB's row group: a batch of exactly this many events lands in the file as whole row
# groups, compressed once inside its commit. A batch that overshoots leaves a partial group
# behind it, rewritten by the next batch and compressed again when the WAL is checkpointed
# (about 1.9 microseconds of CPU per event of a 131,072-event batch).
ROW_GROUP_ROWS = 122_880
# A batch is read in this many pull requests. The server streams up to two of them ahead of
# the reader and must hold all of it while the reader is busy: whole 122,880-event requests
# (~60 MB of standard events each) overran its per-client buffer, and it closed the
# connection twice per million events (the reader recovered, the server sent it all again).
PULLS_PER_BATCH = 4


async def replay_into(
    store: ProjectionStore,
    nc: NatsClient,
    *,
    until_seq: int | None = None,
    until_time: datetime | None = None,
    goal_id: str | None = None,
    batch: int = ROW_GROUP_ROWS,
    on_progress: Callable[[ReplayProgress], None] | None = None,
) -> ReplayProgress:
    """Apply the stream from the store's checkpoint up to the limits; returns the final progress.

    The stream's last sequence is read once at the start: a replay is a snapshot, events
    appended while it runs are not included. When it returns, every event is in the database
    file itself (the write-ahead log folded in), not just committed.
    """
    target = await stream_last_seq(nc, EVENTS_STREAM)
    if until_seq is not None:
        target = min(target, until_seq)
    until_ns = int(until_time.timestamp() * 1e9) if until_time else None
    subject = goal_events_filter(goal_id) if goal_id else "agora.events.>"
    applier = OrderedApplier(store.apply_raw)
    # The views hold large outputs themselves, as if written inline (events/outputs.py).
    outputs = OutputStore(nc.jetstream(), threshold=0)
    started = time.perf_counter()
    at_seq = store.last_seq()
    reader = await StreamReader(
        nc, EVENTS_STREAM, subject, start_seq=at_seq + 1, batch=max(1, batch // PULLS_PER_BATCH)
    ).open()
    gathered = RawBatch()
    try:
        done = at_seq >= target
        while not done:
            chunk = await reader.next_batch(wait=False)
            chunk.cut_after(target)
            past_time = _first_after(chunk.timestamps_ns, until_ns)
            if past_time is not None:
                chunk.keep(past_time)
            done = not chunk.seqs or chunk.pending == 0 or past_time is not None
            done = done or chunk.seqs[-1] >= target
            gathered.extend(chunk)
            while len(gathered) >= batch or (done and gathered.seqs):
                ready = gathered.take(batch)
                await applier.submit(ready.seqs, await outputs.inline_payloads(ready.payloads))
                at_seq = ready.seqs[-1]
                if on_progress:
                    elapsed = time.perf_counter() - started
                    on_progress(ReplayProgress(applier.applied, at_seq, target, elapsed))
        await applier.flush()
        await asyncio.to_thread(store.checkpoint)
    finally:
        await reader.close()
    return ReplayProgress(applier.applied, at_seq, target, time.perf_counter() - started)


def _first_after(timestamps_ns: list[int], limit_ns: int | None) -> int | None:
    """Index of the first message stored after ``limit_ns`` (None: no limit, or none after)."""
    if limit_ns is None:
        return None
    return next((i for i, ts in enumerate(timestamps_ns) if ts > limit_ns), None)
