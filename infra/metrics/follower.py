"""Reading the log and the service consumers' state, and exporting what they measure.

Only the event types that measure something (``projections.metrics.MEASURED_TYPES``) are read,
filtered by the server on their subjects, so the follower's cost grows with goals and model
calls, not with every step. The queue depths come from JetStream's consumer info of every
service's durable consumer (``infra.platform.topology``), sampled right before each export.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import nats.js.errors
from nats.aio.client import Client as NatsClient

from events.codec import decode_event
from events.errors import AgoraError
from events.subjects import EVENTS_STREAM, event_type_filter
from infra.bus.reader import StreamReader
from infra.bus.streams import ConsumerSpec
from infra.logging import get_logger
from infra.metrics.otlp import MetricsTarget
from infra.platform.topology import SERVICE_CONSUMERS
from projections.metrics import (
    MEASURED_TYPES,
    ConsumerState,
    Measurement,
    consumer_measurements,
    event_measurements,
)

__all__ = ["MetricsFollower"]

log = get_logger("agora.metrics")


def _service_consumers() -> tuple[ConsumerSpec, ...]:
    return tuple(spec for specs in SERVICE_CONSUMERS.values() for spec in specs)


@dataclass
class MetricsFollower:
    nc: NatsClient
    target: MetricsTarget
    consumers: Sequence[ConsumerSpec] = field(default_factory=_service_consumers)
    # The last stream sequence read, and how many events measured something.
    position: int = 0
    measured: int = 0

    def _reader(self, from_seq: int) -> StreamReader:
        first, *more = (event_type_filter(tag) for tag in MEASURED_TYPES)
        return StreamReader(
            self.nc,
            EVENTS_STREAM,
            first,
            more_filter_subjects=tuple(more),
            start_seq=max(1, from_seq),
            # Measurements are exported every few seconds at most: a pull may wait a second
            # for new events, and fills up meanwhile under load (few, large batches).
            linger_s=1.0,
        )

    async def _read(self, from_seq: int, stop: asyncio.Event | None) -> int:
        """Record the events from ``from_seq`` on: to the log's end (``stop`` None), or live
        until ``stop`` is set. The last sequence read."""
        self.position = max(self.position, from_seq - 1)
        reader = await self._reader(from_seq).open()
        try:
            while stop is None or not stop.is_set():
                batch = await reader.next_batch(wait=stop is not None)
                recorded: list[Measurement] = []
                for payload in batch.payloads:
                    measurements = event_measurements(decode_event(payload))
                    recorded += measurements
                    self.measured += bool(measurements)
                self.target.record(recorded)
                if batch.seqs:
                    self.position = batch.seqs[-1]
                if stop is None and (not batch.seqs or batch.pending == 0):
                    break
        finally:
            await reader.close()
        return self.position

    async def sample_consumers(self) -> list[ConsumerState]:
        """Every service consumer's state now (one that does not exist yet is left out)."""
        js = self.nc.jetstream()
        states = []
        for spec in self.consumers:
            try:
                info = await js.consumer_info(spec.stream, spec.durable)
            except nats.js.errors.NotFoundError:
                continue
            states.append(
                ConsumerState(
                    spec.stream, spec.durable, info.num_pending or 0, info.num_ack_pending or 0
                )
            )
        for state in states:
            self.target.record(consumer_measurements(state))
        return states

    async def export_now(self) -> None:
        """Sample the consumers and send everything recorded so far."""
        await self.sample_consumers()
        await asyncio.to_thread(self.target.export)

    async def export_since(self, from_seq: int) -> int:
        """One export of the log from ``from_seq`` to its end; the last sequence read."""
        last = await self._read(from_seq, None)
        await self.export_now()
        return last

    async def follow(self, from_seq: int, stop: asyncio.Event, interval_s: float) -> int:
        """Record events as they are appended and export every ``interval_s`` until ``stop``
        (and once more then); the last sequence read. A receiver that refuses an export is
        logged and tried again at the next one (the data is cumulative)."""
        reading = asyncio.ensure_future(self._read(from_seq, stop))
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)
                if reading.done():
                    break  # the reader failed: its error is raised below
                try:
                    await self.export_now()
                except AgoraError as exc:
                    log.warning("metrics_export_failed", error=str(exc))
        finally:
            stop.set()
            last = await reading
        return last
