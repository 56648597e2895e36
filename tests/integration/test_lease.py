"""The lease fence on a real stream: a replica that lost the lease can write nothing more."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted, LeaseAcquired
from events.errors import LeaseLostError
from events.model import Stamp
from infra.bus.lease import Lease
from infra.bus.publisher import EventPublisher
from tests.support import all_events


def _lease(nc: NatsClient, holder: str) -> Lease:
    return Lease(
        nc,
        EventPublisher(nc),
        service="planner",
        producer="planner@test",
        now=lambda: datetime.now(UTC),
        holder=holder,
    )


def _outcome(goal: str, n: int) -> GoalCompleted:
    stamp = Stamp("planner@test", goal, datetime.now(UTC), None, goal)
    return GoalCompleted(
        **stamp.envelope("goal_completed", "outcome", n), result="r", iterations=1, score=1.0
    )


async def test_the_old_holders_write_is_refused_once_another_took_the_lease(
    nc: NatsClient,
) -> None:
    first, second = _lease(nc, "replica-1"), _lease(nc, "replica-2")
    await first.acquire()
    await first.append([_outcome("g-1", 1)])

    await second.acquire()  # replica-1 paused past its pin; replica-2 is pinned now

    with pytest.raises(LeaseLostError):
        await first.append([_outcome("g-1", 2), _outcome("g-1", 3)])
    assert not first.held
    await second.append([_outcome("g-1", 4)])
    log = await all_events(nc)
    leases = [e for e in log if isinstance(e, LeaseAcquired)]
    assert [(e.holder, e.previous_holder) for e in leases] == [
        ("replica-1", ""),
        ("replica-2", "replica-1"),
    ]
    # Nothing of the refused decision was stored, not even its first event.
    assert [e.event_id for e in log if isinstance(e, GoalCompleted)] == [
        _outcome("g-1", 1).event_id,
        _outcome("g-1", 4).event_id,
    ]


async def test_a_decision_taken_under_an_earlier_lease_is_not_written_under_a_later_one(
    nc: NatsClient,
) -> None:
    lease = _lease(nc, "replica-1")
    await lease.acquire()
    decided_under = lease.fence
    await _lease(nc, "replica-2").acquire()
    with pytest.raises(LeaseLostError):
        await lease.append([_outcome("g-2", 1)])
    await lease.acquire()  # pinned again later

    with pytest.raises(LeaseLostError):
        await lease.append([_outcome("g-2", 2)], epoch=decided_under)
    await lease.append([_outcome("g-2", 3)], epoch=lease.fence)


async def test_a_lease_whose_acknowledgement_was_lost_is_adopted_not_written_again(
    nc: NatsClient,
) -> None:
    lease = _lease(nc, "replica-1")
    await lease.acquire()
    lease.release()  # as if the acknowledgement of that write had been lost

    await lease.acquire()

    leases = [e for e in await all_events(nc) if isinstance(e, LeaseAcquired)]
    assert len(leases) == 1
    assert lease.held
