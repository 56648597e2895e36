"""Scenario 2: a random service SIGKILLed every few seconds during a run: 0 lost, 0 doubled,
and each side-effect tool call executed at most once per task attempt."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.clients.query import projector_caught_up
from infra.platform.embedded import EmbeddedNats
from infra.platform.runner import SERVICES
from projections.service import database_path
from tests.faults.checker import check_projection, check_side_effects, collect, count_lines
from tests.faults.conftest import report
from tests.faults.harness import (
    CALLS_DIR,
    ServiceProcesses,
    count_finished,
    fault_settings,
    goal_command,
    submit_all,
    wait_all_finished,
)
from tests.support import all_events


# A cap on kills keeps the reduced run short on a busy machine, where a restarted Python
# process may need longer than the kill period to start.
@pytest.mark.parametrize(
    ("goals", "kill_every_s", "max_kills"),
    [
        pytest.param(60, 1.5, 5, id="reduced"),
        pytest.param(500, 3.0, 40, id="full", marks=pytest.mark.faults),
    ],
)
async def test_random_services_sigkilled_during_a_run_lose_and_double_nothing(
    tmp_path: Path, goals: int, kill_every_s: float, max_kills: int
) -> None:
    seed = int(time.time())
    chooser = random.Random(seed)
    server = EmbeddedNats(tmp_path / "nats", durability="os").start()
    settings = fault_settings(tmp_path, server.url)
    nc = await connect(settings, "fault-test")
    services = ServiceProcesses(settings, log_dir=tmp_path / "logs")
    kills: dict[str, int] = dict.fromkeys(SERVICES, 0)
    try:
        await provision(nc.jetstream(), settings)
        for name in SERVICES:
            services.start(name)
        started = time.monotonic()
        goal_ids = await submit_all(AgoraClient(nc), [goal_command("r", n) for n in range(goals)])
        deadline = started + 60 + goals * 0.8
        # Kill while goals are still running; once all have finished, stop killing.
        while sum(kills.values()) < max_kills and await count_finished(nc) < goals:
            done = await count_finished(nc)
            assert time.monotonic() < deadline, f"{done}/{goals} finished (seed {seed}, {kills})"
            await asyncio.sleep(
                kill_every_s
            )  # the fault schedule itself, not a wait for a condition
            victim = chooser.choice(SERVICES)
            services.kill(victim)
            kills[victim] += 1
            services.start(victim)
        await wait_all_finished(nc, goals, timeout_s=max(1.0, deadline - time.monotonic()))
        elapsed = time.monotonic() - started
        await projector_caught_up(nc, timeout_s=60)
        services.stop_all()

        verdict = await collect("2 random service SIGKILLs", nc, goal_ids)
        check_side_effects(
            verdict, await all_events(nc), count_lines(settings.workspace / CALLS_DIR)
        )
        await check_projection(verdict, nc, database_path(settings), tmp_path / "rebuilt.duckdb")
        verdict.counts["kills"] = sum(kills.values())
        verdict.counts["seed"] = seed
        verdict.counts["seconds"] = round(elapsed)
        report(verdict.line() + f" kills_by_service={kills}")
        assert verdict.ok, verdict.explain()
        assert sum(kills.values()) >= 1, "no fault was injected"
    finally:
        services.stop_all()
        await nc.close()
        server.stop()
