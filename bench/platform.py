"""Scenarios against the running platform: every service its own process, a real nats-server.

A load driver keeps a fixed number of goals in flight. It submits through JetStream (the intake
contract) and learns of completions from a plain core subscription on
``agora.events.*.goal_completed`` / ``goal_failed``. That subscription is a read of subjects
the platform publishes anyway, so it adds no work to the system under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NatsClient

from events.subjects import INTAKE_GOAL, INTAKE_STREAM
from infra.clients.query import projector_caught_up
from infra.platform.auth import ADMIN, connect_options
from infra.platform.supervisor import Supervisor
from infra.platform.topology import SERVICE_CONSUMERS
from infra.settings import Settings

__all__ = [
    "Load",
    "cpu_seconds",
    "drive",
    "percentile",
    "platform_pids",
    "rss_mb",
    "running_platform",
    "standard_goal",
    "wait_until_idle",
    "wakeups",
]


def standard_goal(
    n: int, steps: int = 3, tool: str = "echo", *, prefix: str = "b", seconds: float = 0.0
) -> dict[str, Any]:
    """The benchmark's standard goal: ``steps`` explicit steps, rule evaluator."""
    args = {"text": f"step of goal {n}"} if tool == "echo" else {"seconds": seconds}
    return {
        "command_id": f"{prefix}-{n}",
        "goal_id": f"{prefix}-{n}",
        "text": f"benchmark goal {n}",
        "steps": [{"tool": tool, "args": args} for _ in range(steps)],
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, int(q) - 1))]


def rss_mb(pids: list[int]) -> float:
    """Resident memory summed over ``pids`` (Linux /proc), in MB."""
    total_kib = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) each process has used so far, in seconds (Linux /proc).

    The primary before/after metric of the optimisation work: unlike wall-clock rates it
    hardly moves when other work shares the machine.
    """
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError, ValueError, IndexError):
            # Fields after the parenthesised command name; utime and stime are the 14th, 15th.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[name] = (int(fields[11]) + int(fields[12])) / tick
    return used


def wakeups(pids: dict[str, int]) -> dict[str, int]:
    """Voluntary context switches of each process's main thread so far (Linux /proc): how
    often it went to sleep waiting, so how often something had to wake it."""
    counted: dict[str, int] = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    counted[name] = int(line.split()[1])
    return counted


def platform_pids(supervisor: Supervisor) -> dict[str, int]:
    """The platform's processes by name: nats-server and every service."""
    pids = {"nats-server": supervisor.server.pid if supervisor.server else None}
    pids |= {name: supervisor.pid_of(name) for name in supervisor.services}
    return {name: pid for name, pid in pids.items() if pid}


async def wait_until_idle(nc: NatsClient, timeout_s: float = 300.0) -> None:
    """Until every service consumer has nothing pending or unacked and the projector caught up.

    A goal completes before all of its work is done (memory may still be storing its last
    observation, the projector still writing it): CPU and events per goal are read after this.
    """
    js = nc.jetstream()
    consumers = [(s.stream, s.durable) for specs in SERVICE_CONSUMERS.values() for s in specs]
    deadline = time.monotonic() + timeout_s
    while True:
        infos = [await js.consumer_info(stream, durable) for stream, durable in consumers]
        if all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the platform was still busy after {timeout_s}s")
        await asyncio.sleep(0.1)  # polling consumer state, with a deadline
    await projector_caught_up(nc, timeout_s=timeout_s)


@contextlib.asynccontextmanager
async def running_platform(
    durability: str = "os", **overrides: Any
) -> AsyncIterator[tuple[Supervisor, NatsClient]]:
    with tempfile.TemporaryDirectory(prefix="agora-bench-") as tmp:
        settings = replace(
            Settings.from_env({}),
            data_dir=Path(tmp),
            workspace=Path(tmp) / "workspace",
            nats_port=0,
            durability="fsync" if durability == "fsync" else "os",
            # Handing work back at shutdown is logged as a warning by every service; outcomes
            # are checked by the scenarios themselves. Errors still show.
            log_level="error",
            **overrides,
        )
        supervisor = Supervisor(settings)
        await supervisor.start()
        # The bench drives the platform as its operator: admin (core subscriptions to events).
        nc = await nats.connect(
            supervisor.url, pending_size=256 * 1024 * 1024, **connect_options(settings, ADMIN)
        )
        try:
            await _wait_for_services(nc)
            yield supervisor, nc
        finally:
            await nc.close()
            await supervisor.stop()


async def _wait_for_services(nc: NatsClient) -> None:
    """Until one goal goes through end to end: every service is up and consuming."""
    load = await drive(nc, [standard_goal(0, steps=1, prefix="warmup")], in_flight=1, timeout_s=60)
    if load.completed != 1:
        raise RuntimeError("the platform did not complete a warm-up goal")


@dataclass
class Load:
    submitted: int
    completed: int
    failed: int
    seconds: float
    latencies_ms: list[float]

    @property
    def goals_per_s(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


async def drive(
    nc: NatsClient,
    commands: list[dict[str, Any]],
    *,
    in_flight: int,
    timeout_s: float = 600.0,
    on_tick: Callable[[], None] | None = None,
) -> Load:
    """Submit ``commands`` keeping at most ``in_flight`` unfinished; wait for every outcome."""
    js = nc.jetstream()
    started_at: dict[str, float] = {}
    latencies: list[float] = []
    outcomes = {"completed": 0, "failed": 0}
    slots = asyncio.Semaphore(in_flight)
    all_done = asyncio.Event()
    expected = len(commands)

    async def on_outcome(msg: Any) -> None:
        goal_id = msg.subject.split(".")[2]
        begun = started_at.pop(goal_id, None)
        if begun is None:
            return  # a goal of another run
        latencies.append((time.perf_counter() - begun) * 1000)
        outcomes["completed" if msg.subject.endswith("goal_completed") else "failed"] += 1
        slots.release()
        if outcomes["completed"] + outcomes["failed"] >= expected:
            all_done.set()

    subs = [
        await nc.subscribe("agora.events.*.goal_completed", cb=on_outcome),
        await nc.subscribe("agora.events.*.goal_failed", cb=on_outcome),
    ]
    began = time.perf_counter()
    try:
        acks = []
        for command in commands:
            await slots.acquire()
            started_at[str(command["goal_id"])] = time.perf_counter()
            acks.append(
                await js.publish_async(
                    INTAKE_GOAL,
                    msgspec.json.encode(command),
                    stream=INTAKE_STREAM,
                    headers={"Nats-Msg-Id": str(command["command_id"])},
                )
            )
            if on_tick:
                on_tick()
        await asyncio.gather(*acks)
        await asyncio.wait_for(all_done.wait(), timeout_s)
    finally:
        for sub in subs:
            await sub.unsubscribe()
    return Load(
        expected, outcomes["completed"], outcomes["failed"], time.perf_counter() - began, latencies
    )
