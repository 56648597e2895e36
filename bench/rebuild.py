"""Rebuild: replay N events from a real stream into a fresh DuckDB projection file."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import nats

from bench.harness import Row
from bench.synthetic import interleaved_payloads
from events.subjects import EVENTS_STREAM
from infra.bus.reader import StreamReader, stream_last_seq
from infra.bus.streams import provision_streams
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings
from projections.replay import replay_into
from projections.store import ProjectionStore

__all__ = ["run_rebuild"]


async def _load(nc: nats.aio.client.Client, events: int) -> float:
    """Fill AGORA_EVENTS through core publishes (no per-message ack); returns seconds taken."""
    started = time.perf_counter()
    for n, (subject, event_id, payload) in enumerate(interleaved_payloads(events), 1):
        await nc.publish(subject, payload, headers={"Nats-Msg-Id": event_id})
        if n % 50_000 == 0:
            await nc.flush()
    await nc.flush()
    while await stream_last_seq(nc, EVENTS_STREAM) < events:  # noqa: ASYNC110 - polls the server
        await asyncio.sleep(0.1)  # the server is still storing what was sent
    return time.perf_counter() - started


async def _read_only(nc: nats.aio.client.Client, events: int) -> float:
    """The physical limit: read every message and do nothing with it."""
    reader = await StreamReader(nc, EVENTS_STREAM, "agora.events.>", batch=20_000).open()
    started = time.perf_counter()
    seen = 0
    try:
        while seen < events:
            seen += len(await reader.next_batch(wait=False))
    finally:
        await reader.close()
    return events / (time.perf_counter() - started)


async def run_rebuild(events: int = 1_000_000) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="agora-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), durability="os")
        with EmbeddedNats(settings.nats_dir, durability="os") as server:
            nc = await nats.connect(server.url, pending_size=256 * 1024 * 1024)
            try:
                await provision_streams(nc.jetstream(), settings)
                load_s = await _load(nc, events)
                read_rate = await _read_only(nc, events)
                path = Path(tmp) / "rebuilt.duckdb"
                with ProjectionStore.open(path, locked=False) as store:
                    progress = await replay_into(store, nc)
                    count = store.connection.execute("SELECT count(*) FROM events").fetchone()
                size_mb = path.stat().st_size / 1e6
            finally:
                await nc.close()
    if count is None or count[0] != events:
        raise RuntimeError(f"the rebuild wrote {count} events, not {events}")
    details = {
        "events": events,
        "seconds": round(progress.elapsed_s, 2),
        "load_seconds": round(load_s, 1),
        "file_mb": round(size_mb, 1),
    }
    return [
        Row(
            "rebuild",
            "events/s",
            progress.events_per_s,
            "events/s",
            "≥ 150,000 (floor 50,000)",
            details,
        ),
        Row(
            "rebuild",
            "read-only limit (stream reader)",
            read_rate,
            "msgs/s",
            "the physical limit: reading, no projection",
            {"events": events},
        ),
    ]
