"""Scenario 1: nats-server SIGKILLed in the middle of a run and restarted: 0 lost, 0 doubled."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from events.subjects import EVENTS_STREAM
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.clients.query import projector_caught_up
from infra.platform.embedded import EmbeddedNats
from projections.service import database_path
from tests.conftest import InProcessPlatform
from tests.faults.checker import check_projection, check_side_effects, collect, count_lines
from tests.faults.conftest import report
from tests.faults.harness import (
    CALLS_DIR,
    count_finished,
    fault_settings,
    goal_command,
    submit_all,
    wait_all_finished,
)
from tests.support import all_events, wait_until


@pytest.mark.parametrize(
    "goals",
    [pytest.param(40, id="reduced"), pytest.param(500, id="full", marks=pytest.mark.faults)],
)
async def test_nats_server_sigkilled_mid_run_and_restarted_loses_and_doubles_nothing(
    tmp_path: Path, goals: int
) -> None:
    # fsync durability, the default: what agora promises an operator.
    server = EmbeddedNats(tmp_path / "nats", durability="fsync").start()
    settings = fault_settings(tmp_path, server.url)
    nc = await connect(settings, "fault-test")
    platform = InProcessPlatform(settings)
    try:
        await provision(nc.jetstream(), settings)
        platform.start()
        started = time.monotonic()
        goal_ids = await submit_all(AgoraClient(nc), [goal_command("k", n) for n in range(goals)])

        js = nc.jetstream()

        async def a_fifth_done() -> bool:
            # About 25 events per goal: kill once a fifth of the run's events are stored.
            return (await js.stream_info(EVENTS_STREAM)).state.messages >= 5 * goals

        await wait_until(a_fifth_done, timeout_s=120, what="a fifth of the run")
        finished_at_kill = await count_finished(nc)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        server.stop()  # reaps the killed process; the port is kept for the restart
        server.start()
        await wait_all_finished(nc, goals, timeout_s=60 + goals * 0.6)
        elapsed = time.monotonic() - started
        await projector_caught_up(nc, timeout_s=60)
        await platform.stop()

        verdict = await collect("1 nats-server SIGKILL+restart", nc, goal_ids)
        check_side_effects(
            verdict, await all_events(nc), count_lines(settings.workspace / CALLS_DIR)
        )
        await check_projection(verdict, nc, database_path(settings), tmp_path / "rebuilt.duckdb")
        verdict.counts["finished_at_kill"] = finished_at_kill
        verdict.counts["seconds"] = round(elapsed)
        report(verdict.line())
        assert verdict.ok, verdict.explain()
        assert verdict.completed == goals
        assert finished_at_kill < goals, "the server was killed after the run, not during it"
    finally:
        await platform.stop()
        await nc.close()
        server.stop()
