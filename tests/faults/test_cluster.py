"""A real three-node JetStream cluster with R3 streams and consumers: the stream leader is
SIGKILLed in the middle of a run; every goal finishes and nothing acknowledged is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.subjects import EVENTS_STREAM
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.clients.query import projector_caught_up
from infra.platform.cluster import EmbeddedCluster
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


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    # "os" durability: an acknowledged write is on a quorum of nodes, and a node is killed
    # here, not the power. fsync on three nodes of a shared 2-core box only adds minutes.
    with EmbeddedCluster(tmp_path / "nats", size=3, durability="os") as cluster:
        yield cluster


@pytest.mark.faults
async def test_stream_leader_sigkilled_mid_run_every_goal_finishes_nothing_lost(
    tmp_path: Path, nats_cluster: EmbeddedCluster
) -> None:
    goals = 500
    settings = fault_settings(tmp_path, *nats_cluster.urls, stream_replicas=3)
    nc = await connect(settings, "fault-test")
    platform = InProcessPlatform(settings)
    js = nc.jetstream()
    try:
        await provision(js, settings)
        info = await js.stream_info(EVENTS_STREAM)
        assert info.config.num_replicas == 3
        platform.start()
        started = time.monotonic()
        goal_ids = await submit_all(AgoraClient(nc), [goal_command("c", n) for n in range(goals)])

        async def a_fifth_done() -> bool:
            return (await js.stream_info(EVENTS_STREAM)).state.messages >= 5 * goals

        await wait_until(a_fifth_done, timeout_s=120, what="a fifth of the run")
        leader = (await js.stream_info(EVENTS_STREAM)).cluster.leader
        finished_at_kill = await count_finished(nc)
        nats_cluster.node_named(leader).kill()
        await wait_all_finished(nc, goals, timeout_s=90 + goals * 0.6)
        elapsed = time.monotonic() - started
        new_leader = (await js.stream_info(EVENTS_STREAM)).cluster.leader
        consumer = await js.consumer_info(EVENTS_STREAM, "executor")
        # Durable consumers inherit the stream's replicas (0 in the config means "as the
        # stream"): the consumer's own cluster info lists its two followers.
        assert len(consumer.cluster.replicas or []) == 2
        await projector_caught_up(nc, timeout_s=60)
        await platform.stop()

        verdict = await collect("cluster: stream leader SIGKILL", nc, goal_ids)
        check_side_effects(
            verdict, await all_events(nc), count_lines(settings.workspace / CALLS_DIR)
        )
        await check_projection(verdict, nc, database_path(settings), tmp_path / "rebuilt.duckdb")
        verdict.counts["finished_at_kill"] = finished_at_kill
        verdict.counts["seconds"] = round(elapsed)
        report(verdict.line() + f" killed={leader} new_leader={new_leader}")
        assert verdict.ok, verdict.explain()
        assert verdict.completed == goals
        assert new_leader != leader
        assert finished_at_kill < goals, "the leader was killed after the run, not during it"
    finally:
        await platform.stop()
        await nc.close()
