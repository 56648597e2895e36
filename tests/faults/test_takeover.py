"""Scenario 7: the active planner paused past its priority timeout while goals run.

The planner's events consumer pins one replica; the standby is pinned when the active one stops
pulling, and takes the planner's lease before it decides anything. The paused replica, resumed,
still believes it is the active one: its writes are refused by the lease fence (nothing of
them is stored), it stands by, and every goal completes exactly once.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import LeaseAcquired
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.platform.embedded import EmbeddedNats
from infra.platform.stats import collect_stats, micro_name
from tests.faults.conftest import report
from tests.faults.harness import (
    ServiceProcesses,
    count_finished,
    fault_settings,
    submit_all,
)
from tests.faults.test_replicas import finish_and_check, parallel_goal
from tests.support import all_events, wait_until


async def _leases(nc: NatsClient) -> list[LeaseAcquired]:
    events = await all_events(nc, "agora.events._planner.>")
    return [e for e in events if isinstance(e, LeaseAcquired)]


@pytest.mark.faults
async def test_a_paused_active_planner_is_fenced_out_and_every_goal_completes_once(
    tmp_path: Path,
) -> None:
    goals = 80
    server = EmbeddedNats(tmp_path / "nats", durability="os").start()
    settings = fault_settings(tmp_path, server.url, pinned_timeout_s=2.0, ack_wait_s=4.0)
    nc = await connect(settings, "fault-test")
    services = ServiceProcesses(settings, log_dir=tmp_path / "logs")
    try:
        await provision(nc.jetstream(), settings)
        services.start("planner", "-1")
        for name in ("executor", "memory", "evaluator", "projector"):
            services.start(name)
        client = AgoraClient(nc)
        # A few goals make planner-1 the active replica; the rest are submitted once the
        # standby is up, so work remains when planner-1 stops (however slow the box).
        warm_up = 5
        goal_ids = await submit_all(client, [parallel_goal(n, 1.0) for n in range(warm_up)])

        async def planner_1_active() -> bool:
            return len(await _leases(nc)) == 1

        await wait_until(planner_1_active, timeout_s=30, what="planner-1 to take the lease")
        services.start("planner", "-2")

        async def standby_up() -> bool:
            stats = await collect_stats(nc, timeout_s=0.5)
            return sum(1 for s in stats if s.get("name") == micro_name("planner")) == 2

        await wait_until(standby_up, timeout_s=30, what="the standby planner")
        goal_ids += await submit_all(client, [parallel_goal(n, 1.0) for n in range(warm_up, goals)])
        paused_at = await count_finished(nc)
        services.signal("planner-1", signal.SIGSTOP)

        async def taken_over() -> bool:
            return len(await _leases(nc)) >= 2

        await wait_until(taken_over, timeout_s=30, what="the standby to take the lease")

        async def progress() -> bool:
            return await count_finished(nc) > paused_at

        await wait_until(progress, timeout_s=30, what="goals finishing under the standby")
        services.signal("planner-1", signal.SIGCONT)
        await asyncio.sleep(1.0)  # the resumed replica's in-flight work meets the fence
        verdict = await finish_and_check(
            "7 active planner SIGSTOPped past its pin", nc, services, goal_ids, tmp_path
        )
        leases = await _leases(nc)
        verdict.counts["leases"] = len(leases)
        verdict.counts["finished_when_paused"] = paused_at
        report(verdict.line())
        assert verdict.ok, verdict.explain()
        assert verdict.completed == goals
        assert paused_at < goals, "planner-1 was paused after the run, not during it"
        holders = [lease.holder for lease in leases]
        assert holders[0] != holders[1]
        assert leases[1].previous_holder == holders[0]
    finally:
        services.stop_all()
        await nc.close()
        server.stop()
