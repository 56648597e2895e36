"""Query: point lookups and a ``tool_stats`` aggregate against a blackboard of N goals.

The blackboard is built the way a rebuild builds it (synthetic goals of 19 events each, applied
in batches by ``ProjectionStore.apply_raw``) straight into the projector's file; then the real
projector runs as its own process against a real nats-server and answers on ``agora.query``.
Latency is measured twice: request/reply on ``agora.query`` from a connected client (what
``agora query`` does once started), and the whole ``agora query`` command as a user runs it,
Python start-up included.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient

from bench.harness import Row
from bench.platform import percentile
from bench.synthetic import EVENTS_PER_GOAL, interleaved_payloads
from infra.bus.streams import provision_streams
from infra.clients.query import QueryFailedError, ask, projector_status
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings
from projections.pipeline import OrderedApplier
from projections.service import database_path
from projections.store import ProjectionStore

__all__ = ["build_blackboard", "projector_answering", "run_query"]

TOOL_STATS = "SELECT * FROM tool_stats ORDER BY tool"


def _point_lookup(goal: int) -> str:
    return f"SELECT * FROM goals WHERE goal_id = 'bench-{goal:08d}'"


async def build_blackboard(path: Path, goals: int, batch: int = 131_072) -> float:
    """Write ``goals`` synthetic goals into a fresh projection file; returns seconds taken.

    Batches of a full DuckDB row group go straight to the file, not through the WAL (as replay).
    """
    started = time.perf_counter()
    with ProjectionStore.open(path) as store:
        applier = OrderedApplier(store.apply_raw)  # generating overlaps writing
        seqs: list[int] = []
        payloads: list[bytes] = []
        for seq, (_, _, payload) in enumerate(
            interleaved_payloads(goals * EVENTS_PER_GOAL, in_flight=1000), 1
        ):
            seqs.append(seq)
            payloads.append(payload)
            if len(seqs) == batch:
                await applier.submit(seqs, payloads)
                seqs, payloads = [], []
        await applier.submit(seqs, payloads)
        await applier.flush()
        store.checkpoint()
    return time.perf_counter() - started


async def projector_answering(nc: NatsClient, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await projector_status(nc)
        except QueryFailedError:
            if time.monotonic() > deadline:
                raise
        else:
            return
        await asyncio.sleep(0.1)  # polling a starting process, with a deadline


async def _timed_asks(nc: NatsClient, sqls: list[str]) -> list[float]:
    latencies = []
    for sql in sqls:
        began = time.perf_counter()
        reply = await ask(nc, sql, timeout_s=30)
        latencies.append((time.perf_counter() - began) * 1000)
        if not reply.rows:
            raise RuntimeError(f"no rows for {sql!r}: the blackboard is not what was built")
    return latencies


async def _timed_cli(env: dict[str, str], sql: str, runs: int) -> list[float]:
    latencies = []
    for _ in range(runs):
        began = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "infra.cli", "query", sql, "--format", "json",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"agora query failed: {err.decode(errors='replace')}")
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


async def run_query(goals: int = 100_000, lookups: int = 200, cli_runs: int = 10) -> list[Row]:
    rnd = random.Random(11)
    with tempfile.TemporaryDirectory(prefix="agora-bench-") as tmp:
        settings = replace(Settings.from_env({}), data_dir=Path(tmp), nats_port=0, durability="os")
        build_s = await build_blackboard(database_path(settings), goals)
        with EmbeddedNats(settings.nats_dir, durability="os", port=-1) as server:
            env = {**os.environ, **settings.to_env(), "AGORA_NATS_URL": server.url}
            projector = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "infra.cli", "service", "projector", env=env
            )
            nc = await nats.connect(server.url)
            try:
                await provision_streams(nc.jetstream(), settings)
                await projector_answering(nc)
                point = await _timed_asks(
                    nc, [_point_lookup(rnd.randrange(goals)) for _ in range(lookups)]
                )
                stats = await _timed_asks(nc, [TOOL_STATS] * max(5, lookups // 10))
                cli_point = await _timed_cli(env, _point_lookup(rnd.randrange(goals)), cli_runs)
                cli_stats = await _timed_cli(env, TOOL_STATS, cli_runs)
            finally:
                await nc.close()
                projector.terminate()
                await projector.wait()
    name = f"query: blackboard of {goals:,} goals"
    details = {
        "goals": goals,
        "events": goals * EVENTS_PER_GOAL,
        "build_s": round(build_s, 1),
        "point_p99_ms": round(percentile(point, 99), 2),
        "tool_stats_p99_ms": round(percentile(stats, 99), 2),
        "cli_point_p50_ms": round(percentile(cli_point, 50), 1),
        "cli_tool_stats_p50_ms": round(percentile(cli_stats, 50), 1),
    }
    return [
        Row(name, "point lookup p50 (agora.query)", percentile(point, 50), "ms", "≤ 5 ms", details),
        Row(name, "tool_stats p50 (agora.query)", percentile(stats, 50), "ms", "≤ 50 ms", details),
        Row(
            name,
            "point lookup p50, whole `agora query` command",
            percentile(cli_point, 50),
            "ms",
            "includes Python start-up",
            details,
        ),
        Row(
            name,
            "tool_stats p50, whole `agora query` command",
            percentile(cli_stats, 50),
            "ms",
            "includes Python start-up",
            details,
        ),
    ]
