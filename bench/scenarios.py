"""The platform scenarios of `make bench`: throughput, latency, step overhead, in flight, query."""

from __future__ import annotations

import asyncio
import time

from bench.harness import Row
from bench.platform import (
    Load,
    cpu_seconds,
    drive,
    percentile,
    platform_pids,
    rss_mb,
    running_platform,
    standard_goal,
    wait_until_idle,
)
from events.subjects import EVENTS_STREAM
from infra.bus.reader import stream_last_seq

__all__ = ["in_flight", "latency", "step_overhead", "throughput"]


def _latency_details(load: Load) -> dict[str, float]:
    return {
        "goals": load.completed,
        "failed": load.failed,
        "p50_ms": round(percentile(load.latencies_ms, 50), 2),
        "p99_ms": round(percentile(load.latencies_ms, 99), 2),
        "seconds": round(load.seconds, 2),
    }


def cpu_per_goal_ms(
    before: dict[str, float], after: dict[str, float], goals: int
) -> dict[str, float]:
    """CPU milliseconds per goal for each process and in total: the load-independent figure."""
    per = {
        name: round((after[name] - before.get(name, 0.0)) * 1000 / max(1, goals), 3)
        for name in after
    }
    return {**per, "total": round(sum(per.values()), 3)}


async def throughput(durability: str, in_flight_goals: int, goals: int) -> list[Row]:
    async with running_platform(durability) as (supervisor, nc):
        pids = platform_pids(supervisor)
        before = await stream_last_seq(nc, EVENTS_STREAM)
        cpu_before = cpu_seconds(pids)
        commands = [standard_goal(n, prefix=f"t{in_flight_goals}") for n in range(goals)]
        load = await drive(nc, commands, in_flight=in_flight_goals)
        await wait_until_idle(nc)  # the work that trails goal_completed counts too
        cpu = cpu_per_goal_ms(cpu_before, cpu_seconds(pids), load.completed)
        events = await stream_last_seq(nc, EVENTS_STREAM) - before
    target = "≥ 1,000 (os)" if durability == "os" else "≥ 300 (fsync)"
    name = f"throughput {durability}, {in_flight_goals} in flight"
    details = {
        **_latency_details(load),
        "events_per_s": round(events / load.seconds),
        "events_per_goal": round(events / max(1, load.completed), 1),
        "cpu_ms_per_goal": cpu,
    }
    return [
        Row(name, "goals/s", load.goals_per_s, "goals/s", target, details),
        Row(
            name,
            "CPU per goal, all agora processes",
            cpu["total"],
            "ms",
            "2 cores: 1,000 goals/s needs ≤ 2 ms",
            details,
        ),
        Row(
            name,
            "p50 / p99 goal latency",
            details["p50_ms"],
            "ms",
            f"p99 {details['p99_ms']} ms",
            details,
        ),
    ]


async def latency(goals: int) -> list[Row]:
    async with running_platform("os") as (_, nc):
        load = await drive(nc, [standard_goal(n, prefix="lat") for n in range(goals)], in_flight=1)
    details = _latency_details(load)
    return [
        Row(
            "latency, one goal at a time",
            "p50 submit→goal_completed",
            details["p50_ms"],
            "ms",
            "≤ 5 ms (stretch: LangGraph in memory)",
            details,
        ),
        Row(
            "latency, one goal at a time",
            "p99 submit→goal_completed",
            details["p99_ms"],
            "ms",
            "",
            details,
        ),
    ]


async def step_overhead(goals: int, steps: int = 20) -> list[Row]:
    """Orchestration per step: a 20-step chain of sleep 0 against a 1-step goal."""
    async with running_platform("os") as (_, nc):
        one = await drive(
            nc, [standard_goal(n, 1, "sleep", prefix="one") for n in range(goals)], in_flight=1
        )
        chain = await drive(
            nc,
            [standard_goal(n, steps, "sleep", prefix="chain") for n in range(goals)],
            in_flight=1,
        )
    per_step = [
        (c - o) / (steps - 1)
        for c, o in zip(sorted(chain.latencies_ms), sorted(one.latencies_ms), strict=True)
    ]
    details = {
        "goals": goals,
        "steps": steps,
        "p50_chain_ms": round(percentile(chain.latencies_ms, 50), 2),
        "p50_one_step_ms": round(percentile(one.latencies_ms, 50), 2),
    }
    return [
        Row(
            f"step overhead, {steps}-step chain of sleep 0",
            "orchestration per step (p50)",
            percentile(per_step, 50),
            "ms",
            "p50 ≤ 1 ms",
            details,
        ),
    ]


async def in_flight(goals: int, wait_s: float = 0.2, steps: int = 3) -> list[Row]:
    """``goals`` submitted at once, ``steps`` steps each sleeping ``wait_s``: drain, memory."""
    async with running_platform("os") as (supervisor, nc):
        pids = [
            p
            for p in (
                supervisor.server.pid if supervisor.server else None,
                *(supervisor.pid_of(s) for s in supervisor.services),
            )
            if p
        ]
        peak = rss_mb(pids)
        sampling = True

        async def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, rss_mb(pids))
                await asyncio.sleep(0.25)  # a memory sampler's period

        sampler = asyncio.ensure_future(sample())
        commands = [
            standard_goal(n, steps, "sleep", prefix="flight", seconds=wait_s) for n in range(goals)
        ]
        started = time.perf_counter()
        load = await drive(nc, commands, in_flight=goals, timeout_s=900)
        drained = time.perf_counter() - started
        sampling = False
        await sampler
    details = {
        **_latency_details(load),
        "drain_s": round(drained, 2),
        "peak_rss_mb": round(peak, 1),
        "processes": len(pids),
    }
    return [
        Row(
            f"in flight: {goals:,} goals at once, {steps} steps wait {wait_s * 1000:.0f} ms",
            "time to drain",
            drained,
            "s",
            "all complete",
            details,
        ),
        Row(
            f"in flight: {goals:,} goals at once, {steps} steps wait {wait_s * 1000:.0f} ms",
            "peak RSS, all agora processes",
            peak,
            "MB",
            "≤ 1,000 MB",
            details,
        ),
    ]
