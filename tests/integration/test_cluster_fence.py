"""The lease fence on a replicated stream (a real three-node cluster, R3).

A replicated stream refuses a message guarded on a subject while an earlier one guarded on the
same subject is still replicating, so the lease holder's fenced decisions go out one at a time,
each as one atomic batch: many concurrent decisions all land, whole and in order, and a
replica that lost the lease still writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted
from events.errors import LeaseLostError
from events.model import Stamp
from infra.bus.connection import connect
from infra.bus.lease import Lease
from infra.bus.publisher import EventPublisher
from infra.bus.streams import provision
from infra.platform.cluster import EmbeddedCluster
from infra.settings import Settings
from tests.support import all_events


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(tmp_path / "nats", size=3, durability="os") as nodes:
        yield nodes


@pytest.fixture
async def cluster_nc(tmp_path: Path, cluster: EmbeddedCluster) -> AsyncIterator[NatsClient]:
    settings = replace(
        Settings(), nats_urls=tuple(cluster.urls), data_dir=tmp_path, stream_replicas=3
    )
    nc = await connect(settings, "cluster-test")
    await provision(nc.jetstream(), settings)
    yield nc
    await nc.close()


def _lease(nc: NatsClient, holder: str) -> Lease:
    return Lease(
        nc,
        EventPublisher(nc, atomic_fences=True),
        service="planner",
        producer="planner@test",
        now=lambda: datetime.now(UTC),
        holder=holder,
    )


def _decision(goal: str, size: int) -> list[GoalCompleted]:
    stamp = Stamp("planner@test", goal, datetime.now(UTC), None, goal)
    return [
        GoalCompleted(
            **stamp.envelope("goal_completed", "outcome", n), result="r", iterations=1, score=1.0
        )
        for n in range(size)
    ]


async def test_concurrent_fenced_decisions_all_land_whole_on_a_replicated_stream(
    cluster_nc: NatsClient,
) -> None:
    lease = _lease(cluster_nc, "replica-1")
    await lease.acquire()
    decisions = [_decision(f"g-{n}", 3) for n in range(40)]
    acks = await asyncio.gather(*(lease.append(d) for d in decisions))

    for decision_acks in acks:  # each decision's events stored back to back
        seqs = [ack.seq for ack in decision_acks]
        assert seqs == list(range(seqs[0], seqs[0] + 3))
    log = [e for e in await all_events(cluster_nc) if isinstance(e, GoalCompleted)]
    assert sorted(e.event_id for e in log) == sorted(e.event_id for d in decisions for e in d)

    # A resend whose acknowledgement was lost stores nothing twice, alone or grouped with
    # new decisions (those are stored all the same).
    await lease.append(decisions[0])
    fresh = [_decision(f"h-{n}", 2) for n in range(5)]
    await asyncio.gather(lease.append(decisions[1]), *(lease.append(d) for d in fresh))
    again = [e for e in await all_events(cluster_nc) if isinstance(e, GoalCompleted)]
    assert len(again) == len(log) + 10
    assert {e.event_id for d in fresh for e in d} <= {e.event_id for e in again}


async def test_the_old_holder_writes_nothing_once_another_took_the_lease(
    cluster_nc: NatsClient,
) -> None:
    first, second = _lease(cluster_nc, "replica-1"), _lease(cluster_nc, "replica-2")
    await first.acquire()
    await first.append(_decision("g-1", 2))
    await second.acquire()

    refused = _decision("g-2", 3)
    with pytest.raises(LeaseLostError):
        await first.append(refused)
    await second.append(_decision("g-3", 2))
    stored = {e.event_id for e in await all_events(cluster_nc) if isinstance(e, GoalCompleted)}
    assert not stored & {e.event_id for e in refused}
    assert len(stored) == 4
