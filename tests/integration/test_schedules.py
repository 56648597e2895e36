"""Schedules on the real nats-server: each firing becomes one goal, across a server restart."""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig, DeliverPolicy

from events.catalog import GoalAccepted
from events.ids import goal_id_for_command
from events.schedules import (
    NEXT_HEADER,
    SCHEDULER_HEADER,
    ScheduleError,
    firing_of,
    parse_schedule,
)
from events.subjects import INTAKE_GOAL, INTAKE_STREAM
from infra.clients.schedules import add_schedule, get_schedule, list_schedules, remove_schedule
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import all_events, wait_until

GOAL = {"text": "tick", "steps": [{"tool": "echo", "args": {"text": "tick"}}]}


async def firings(nc: NatsClient) -> list[dict[str, str]]:
    """The headers of every firing the server stored on agora.intake.goal, in order."""
    js = nc.jetstream()
    pending = (await js.stream_info(INTAKE_STREAM, subjects_filter=INTAKE_GOAL)).state.subjects
    total = (pending or {}).get(INTAKE_GOAL, 0)
    if total == 0:
        return []
    sub = await js.subscribe(
        INTAKE_GOAL,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    found = []
    try:
        for _ in range(total):
            msg = await sub.next_msg(timeout=5)
            headers = dict(msg.headers or {})
            if SCHEDULER_HEADER in headers:
                found.append(headers)
    finally:
        await sub.unsubscribe()
    return found


def fire_second(headers: dict[str, str]) -> datetime:
    """When an @every 1s firing was due: one second before the next one the server stamped."""
    return datetime.fromisoformat(headers[NEXT_HEADER]) - timedelta(seconds=1)


def whole_seconds(start: datetime, end: datetime) -> set[datetime]:
    first = start.replace(microsecond=0) + timedelta(seconds=1)
    return {first + timedelta(seconds=n) for n in range(int((end - first).total_seconds()) + 1)}


async def test_every_second_schedule_across_a_server_kill_gives_one_goal_per_firing(
    nats_server: EmbeddedNats, nc: NatsClient, settings: Settings
) -> None:
    platform = InProcessPlatform(settings)
    platform.start("planner")
    try:
        spec = parse_schedule(now=datetime.now(UTC), every="1s")
        await add_schedule(nc, "tick", spec, GOAL)

        async def fired(n: int) -> bool:
            return len(await firings(nc)) >= n

        await wait_until(lambda: fired(4), timeout_s=15, what="four firings before the kill")
        assert nats_server.pid is not None
        os.kill(nats_server.pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)
        nats_server.stop()  # reaps it; the port is kept so that clients reconnect
        # Down until two of the schedule's times have passed with no server to fire them.
        missed = killed_at.replace(microsecond=0) + timedelta(seconds=2)

        async def missed_two() -> bool:
            return datetime.now(UTC) > missed + timedelta(milliseconds=200)

        await wait_until(missed_two, timeout_s=5, what="two firing times to pass")
        nats_server.start()
        restarted_at = datetime.now(UTC)

        async def fired_since_restart(seconds: int) -> bool:
            try:
                due = [fire_second(h) for h in await firings(nc)]
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                return False  # JetStream still recovering its streams after the restart
            return any(when >= restarted_at + timedelta(seconds=seconds) for when in due)

        await wait_until(
            lambda: fired_since_restart(4), timeout_s=20, what="four seconds of firings after"
        )
        assert await remove_schedule(nc, "tick")
        stopped_at = datetime.now(UTC)
        stored = await firings(nc)
        ids = [firing_of(h) for h in stored]
        assert None not in ids
        assert len(set(ids)) == len(ids), f"a firing stamped twice: {Counter(ids)}"

        async def all_admitted() -> bool:
            accepted = await all_events(nc, "agora.events.*.goal_accepted")
            return len(accepted) >= len(ids)

        await wait_until(all_admitted, timeout_s=20, what="a goal for every firing")
        accepted = [
            e
            for e in await all_events(nc, "agora.events.*.goal_accepted")
            if isinstance(e, GoalAccepted)
        ]
        goals = Counter(e.goal_id for e in accepted)
        assert max(goals.values()) == 1, f"a goal accepted twice: {goals}"
        assert set(goals) == {goal_id_for_command(i) for i in ids if i is not None}

        # Every second that fell while the server ran fired (a second's margin at each edge
        # for when the schedule was stored, the kill, the restart and the removal).
        due = {fire_second(h) for h in stored}
        first = min(due)
        ran = whole_seconds(first, killed_at - timedelta(seconds=1)) | whole_seconds(
            restarted_at + timedelta(seconds=1), stopped_at - timedelta(seconds=1)
        )
        assert ran <= due, f"seconds without a firing: {sorted(ran - due)}"
        # The seconds the server was down did not fire (the server fires once, late, when it
        # comes back: that firing is due at its restart, not at a missed second).
        down = whole_seconds(killed_at, restarted_at - timedelta(seconds=1))
        assert len(down) >= 1
        assert not due & down, f"fired for seconds the server was down: {sorted(due & down)}"
    finally:
        await platform.stop()


async def test_a_schedule_survives_and_a_removed_one_is_gone(nc: NatsClient) -> None:
    spec = parse_schedule(now=datetime.now(UTC), cron="0 9 * * MON-FRI", time_zone="Europe/Berlin")
    stored = await add_schedule(nc, "standup", spec, GOAL)
    assert (stored.pattern, stored.time_zone) == ("0 0 9 * * MON-FRI", "Europe/Berlin")
    assert stored.goal == GOAL
    with pytest.raises(ScheduleError, match="exists"):
        await add_schedule(nc, "standup", spec, GOAL)
    every = parse_schedule(now=datetime.now(UTC), every="10m")
    replaced = await add_schedule(nc, "standup", every, GOAL, replace=True)
    assert replaced.pattern == "@every 10m"
    assert [s.name for s in await list_schedules(nc)] == ["standup"]
    assert await remove_schedule(nc, "standup")
    assert await get_schedule(nc, "standup") is None
    assert await list_schedules(nc) == []
    assert not await remove_schedule(nc, "standup")
    # The name is free again at once (the removal's marker is no schedule).
    again = await add_schedule(nc, "standup", every, GOAL)
    assert again.pattern == "@every 10m"


async def test_the_server_refuses_what_agora_lets_through_unchecked(nc: NatsClient) -> None:
    # A cron line the server cannot read: its refusal reaches the user with its reason.
    spec = parse_schedule(now=datetime.now(UTC), cron="0 0 99 * * *")
    with pytest.raises(ScheduleError, match="pattern is invalid"):
        await add_schedule(nc, "bad", spec, GOAL)
    with pytest.raises(ScheduleError, match="command_id"):
        await add_schedule(nc, "ids", spec, {**GOAL, "command_id": "c-1"})


async def test_a_one_shot_fires_once_and_is_gone(nc: NatsClient) -> None:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    spec = parse_schedule(now=datetime.now(UTC), at=at.isoformat())
    await add_schedule(nc, "once", spec, GOAL)

    async def gone() -> bool:
        return await get_schedule(nc, "once") is None and len(await firings(nc)) == 1

    await wait_until(gone, timeout_s=10, what="the one-shot to fire and be purged")
    (only,) = await firings(nc)
    assert firing_of(only) == f"schedule-once-at-{at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
