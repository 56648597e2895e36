"""Dead letters people can work with, against a real server and the real services.

A bug in the executor (its outputs for one goal cannot be published) dead-letters that goal's
task; list and show present the record; after the fix, a redrive hands the task back to the
executor alone and the goal completes, with nothing doubled in the event log; a second redrive
sends nothing. Purge removes only what is old enough, and the event log refuses any purge.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted, TaskCompleted, TaskScheduled
from events.model import Event
from events.subjects import DLQ_STREAM, EVENTS_STREAM, INTAKE_GOAL
from infra.bus.dlq import DeadLetterQueue
from infra.bus.publisher import EventPublisher
from infra.bus.redrive import ORIGINAL_STREAM, redrive_subject
from infra.clients.dead_letters import (
    DeadLetterError,
    get_dead_letter,
    list_dead_letters,
    purge_older_than,
    redrive,
    redrive_all,
)
from infra.clients.goals import AgoraClient
from infra.platform.stats import collect_stats
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import all_events, duplicates, wait_until

POISONED = "g-poisoned"


class BuggyPublisher(EventPublisher):
    """The executor's bug: whatever it produces for one goal cannot be published."""

    async def __call__(  # type: ignore[override]
        self,
        events: Sequence[Event],
        *,
        new_goal: bool = False,
        expected_last_seq: int | None = None,
    ) -> list:  # type: ignore[type-arg]
        if any(e.goal_id == POISONED for e in events):
            raise RuntimeError(f"bug: cannot publish outputs of {POISONED}")
        return await super().__call__(
            events, new_goal=new_goal, expected_last_seq=expected_last_seq
        )


def _goal(goal_id: str) -> dict[str, object]:
    return {
        "goal_id": goal_id,
        "text": "compute 6*7",
        "steps": [{"tool": "calculator", "args": {"expression": "6*7"}}],
    }


async def test_a_poisoned_task_is_listed_shown_and_completes_once_after_a_fix_and_redrive(
    nc: NatsClient, client: AgoraClient, settings: Settings
) -> None:
    js = nc.jetstream()
    fast = replace(settings, max_deliver=2)
    platform = InProcessPlatform(fast)
    platform.start("planner", "memory", "evaluator")
    platform.start("executor", publisher=BuggyPublisher)
    try:
        await client.submit(_goal(POISONED))
        healthy = await client.submit(_goal("g-healthy"))
        outcome = await client.wait_for_outcome(healthy.goal_id, timeout_s=30)
        assert isinstance(outcome[-1], GoalCompleted)

        async def dead_lettered() -> bool:
            return len(await list_dead_letters(nc)) == 1

        await wait_until(dead_lettered, timeout_s=20, what="the poisoned task dead-lettered")
        [listed] = await list_dead_letters(nc)
        shown = await get_dead_letter(nc, listed.seq)
        letter = shown.letter
        assert letter is not None
        assert (letter.consumer, letter.reason, letter.deliveries) == (
            "executor",
            "max_deliveries",
            2,
        )
        assert "bug: cannot publish outputs" in letter.error
        assert letter.stream == EVENTS_STREAM
        assert letter.subject == f"agora.events.{POISONED}.task_scheduled"
        original = await js.get_msg(EVENTS_STREAM, letter.stream_seq)
        assert letter.data == original.data  # the original bytes, exactly
        assert letter.headers["Nats-Msg-Id"] == original.headers["Nats-Msg-Id"]
        assert not shown.redriven
        # The buggy executor's own counters say the same: two failed deliveries, one a redelivery.
        [stats] = [r for r in await collect_stats(nc) if r["name"] == "agora-executor"]
        counts = stats["endpoints"][0]["data"]["consumers"]["AGORA_EVENTS/executor"]
        assert (counts["failed"], counts["redelivered"]) == (2, 1)
        assert "bug: cannot publish outputs" in counts["last_error"]

        # Redriven before the fix: it fails again and comes back as a record of its own.
        first = await redrive(nc, listed.seq)
        assert (first.consumer, first.already) == ("executor", False)

        async def dead_lettered_again() -> bool:
            return len(await list_dead_letters(nc)) == 2

        await wait_until(dead_lettered_again, timeout_s=20, what="the failed redrive recorded")
        [_, relisted] = await list_dead_letters(nc)
        assert relisted.letter is not None
        assert (relisted.letter.consumer, relisted.letter.stream) == (
            "redrive-executor",
            DLQ_STREAM,
        )
        assert relisted.letter.data == letter.data
        goal_so_far = [e for e in await all_events(nc) if e.goal_id == POISONED]
        assert not any(isinstance(e, TaskCompleted | GoalCompleted) for e in goal_so_far)

        # The fix: the executor is redeployed without the bug. Nothing moves on by itself.
        await platform.stop("executor")
        platform.start("executor")
        events_before = (await js.stream_info(EVENTS_STREAM)).state.last_seq

        result = await redrive(nc, relisted.seq)
        assert (result.consumer, result.already) == ("executor", False)
        outcome = await client.wait_for_outcome(POISONED, timeout_s=30)
        assert isinstance(outcome[-1], GoalCompleted)
        assert "42" in outcome[-1].result

        again = await redrive(nc, relisted.seq)
        assert again.already
        assert again.copy_seq == result.copy_seq
        assert await redrive_all(nc) == []  # nothing left that was not redriven
        assert (await get_dead_letter(nc, relisted.seq)).redrive_seq == result.copy_seq
        assert all(r.redriven for r in await list_dead_letters(nc))
    finally:
        await platform.stop()

    log = await all_events(nc)
    assert duplicates(log) == {}
    goal_log = [e for e in log if e.goal_id == POISONED]
    # Redrive went to the executor alone: the log holds the task once, its completion once.
    assert sum(isinstance(e, TaskScheduled) for e in goal_log) == 1
    assert sum(isinstance(e, TaskCompleted) for e in goal_log) == 1
    assert events_before < (await js.stream_info(EVENTS_STREAM)).state.last_seq
    copies = await js.stream_info(DLQ_STREAM, subjects_filter="agora.dlq.redrive.>")
    assert copies.state.subjects == {
        redrive_subject("executor", listed.seq): 1,
        redrive_subject("executor", relisted.seq): 1,
    }


async def test_a_second_concurrent_redrive_is_refused_by_the_server(nc: NatsClient) -> None:
    """At most once without reading first: the copy's subject must be empty when it is stored."""
    js = nc.jetstream()
    record = await DeadLetterQueue(js, "planner").record(
        stream="AGORA_INTAKE",
        stream_seq=7,
        subject=INTAKE_GOAL,
        data=b'{"text": "x"}',
        headers={"Nats-Msg-Id": "c-7"},
        reason="undecodable",
        error="DecodeError: example",
        deliveries=1,
    )
    [stored] = await list_dead_letters(nc)
    assert stored.letter == record
    # Someone else's redrive got there first (published between our read and our publish).
    await js.publish(
        redrive_subject("planner", stored.seq), b"first", headers={ORIGINAL_STREAM: "AGORA_INTAKE"}
    )
    result = await redrive(nc, stored.seq)
    assert result.already
    assert (await js.stream_info(DLQ_STREAM)).state.messages == 2


async def test_show_refuses_what_is_not_a_record(nc: NatsClient) -> None:
    with pytest.raises(DeadLetterError, match="no dead letter 99"):
        await get_dead_letter(nc, 99)
    js = nc.jetstream()
    ack = await js.publish("agora.dlq.executor", b"not json")
    [stored] = await list_dead_letters(nc)
    assert stored.letter is None
    assert "not a dead letter record" in stored.problem
    with pytest.raises(DeadLetterError, match="cannot be redriven"):
        await redrive(nc, ack.seq)


async def _record(nc: NatsClient, n: int) -> None:
    await DeadLetterQueue(nc.jetstream(), "memory").record(
        stream=EVENTS_STREAM,
        stream_seq=n,
        subject=f"agora.events.g-{n}.task_completed",
        data=json.dumps({"n": n}).encode(),
        headers={"Nats-Msg-Id": f"e-{n}"},
        reason="max_deliveries",
        error="RuntimeError: example",
        deliveries=8,
    )


async def test_purge_removes_only_records_older_than_the_cutoff(nc: NatsClient) -> None:
    for n in range(3):
        await _record(nc, n)
    old = await list_dead_letters(nc)
    await _record(nc, 3)
    [*_, newest] = await list_dead_letters(nc)
    cutoff = old[-1].stored_at + (newest.stored_at - old[-1].stored_at) / 2
    age = timedelta(hours=1)

    result = await purge_older_than(nc, age, now=cutoff + age)

    assert result.purged == 3
    assert [r.seq for r in await list_dead_letters(nc)] == [newest.seq]
    # Nothing old enough: nothing purged.
    assert (await purge_older_than(nc, age, now=datetime.now(UTC))).purged == 0
    assert [r.seq for r in await list_dead_letters(nc)] == [newest.seq]


async def test_the_event_log_refuses_a_purge_the_dead_letter_queue_allows(nc: NatsClient) -> None:
    js = nc.jetstream()
    assert (await js.stream_info(EVENTS_STREAM)).config.deny_purge is True
    assert not (await js.stream_info(DLQ_STREAM)).config.deny_purge
    reply = await nc.request(f"$JS.API.STREAM.PURGE.{EVENTS_STREAM}", b"{}", timeout=5)
    assert "error" in json.loads(reply.data)
