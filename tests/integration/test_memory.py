"""Memory as a service on a real JetStream: recall across goals, forgetting, working memory.

The 20,000-item snapshot test is in test_memory_snapshots.py; the labelled retrieval corpus
in tests/unit/test_memory_recall.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NatsClient

from events.catalog import (
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    GoalCompleted,
    MemoryForgotten,
    MemoryStored,
    TaskCompleted,
)
from events.memory_commands import INTAKE_MEMORY_FORGET
from events.model import MemoryItem
from events.subjects import DLQ_STREAM, dlq_subject
from infra.bus.dlq import decode_dead_letter
from infra.bus.history import read_events
from infra.bus.publisher import EventPublisher
from infra.bus.snapshots import MEMORY_SNAPSHOTS
from infra.clients.goals import AgoraClient
from infra.clients.memory import MemoryQueryError, ask_memory, send_forget
from infra.clients.query import ask, projector_caught_up
from infra.settings import Settings
from services.memory.follower import SNAPSHOT_NAME
from services.memory.protocol import MEMORY_QUERY, MemoryRequest, decode_reply
from tests.conftest import InProcessPlatform
from tests.support import all_events, wait_until

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


async def search(nc: NatsClient, query: str, k: int = 5, **filters: Any) -> list[MemoryItem]:
    reply = await ask_memory(nc, MemoryRequest(op="search", query=query, k=k, as_of=NOW, **filters))
    return reply.items


async def stats(nc: NatsClient) -> dict[str, Any]:
    return (await ask_memory(nc, MemoryRequest(op="stats"))).stats


async def memory_reached(nc: NatsClient, seq: int) -> None:
    async def reached() -> bool:
        try:
            return int((await stats(nc))["applied_seq"]) >= seq
        except MemoryQueryError:  # not answering yet: still starting
            return False

    await wait_until(reached, timeout_s=30, what=f"memory to fold sequence {seq}")


def stored(n: int, goal_id: str, text: str) -> MemoryStored:
    return MemoryStored(
        event_id=f"ms-{goal_id}-{n}",
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id=None,
        correlation_id=goal_id,
        producer="memory@0.1.0",
        key=f"{goal_id}/1/s{n}",
        text=text,
        source_event_id=f"tc-{goal_id}-{n}",
    )


async def ask_context(nc: NatsClient, goal_id: str, query: str) -> ContextProvided:
    """What memory answers a planner that is about to plan ``goal_id`` with a model."""
    request = ContextRequested(
        event_id=f"cr-{goal_id}",
        goal_id=goal_id,
        occurred_at=datetime.now(UTC),
        causation_id=None,
        correlation_id=goal_id,
        producer="planner@0.1.0",
        iteration=1,
        query=query,
    )
    await EventPublisher(nc)([request])

    async def answered() -> bool:
        return bool(await all_events(nc, f"agora.events.{goal_id}.context_provided"))

    await wait_until(answered, timeout_s=30, what=f"the context for {goal_id}")
    [provided] = await all_events(nc, f"agora.events.{goal_id}.context_provided")
    assert isinstance(provided, ContextProvided)
    return provided


async def test_a_fact_learned_in_one_goal_is_recalled_with_provenance_in_a_later_goal(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    a = await client.submit(
        {
            "goal_id": "goal-a",
            "text": "note the launch code",
            "steps": [{"tool": "echo", "args": {"text": "the launch code name is BLUE HERON"}}],
        }
    )
    events_a = await client.wait_for_outcome(a.goal_id, timeout_s=30)
    [fact_source] = [e for e in events_a if isinstance(e, TaskCompleted)]

    # Goal A wrote no memory event: memory indexed its task_completed itself.
    assert not await all_events(nc, "agora.events.goal-a.memory_stored")

    context = await ask_context(nc, "goal-b", "what is the launch code name?")
    best = context.items[0]
    assert "BLUE HERON" in best.text
    assert best.goal_id == "goal-a"
    assert best.source_event_id == fact_source.event_id
    assert best.key == f"goal-a/1/{fact_source.task_id}"
    assert best.kind == "observation"
    assert best.recorded_at is not None


async def test_a_forgotten_item_is_not_returned_also_after_a_full_rebuild(
    nc: NatsClient, settings: Settings
) -> None:
    platform = InProcessPlatform(settings)
    platform.start("memory")
    try:
        publish = EventPublisher(nc)
        acks = await publish(
            [
                stored(1, "g-secret", "the vault combination is 4-8-15-16"),
                stored(2, "g-secret", "the vault is in the basement"),
                stored(1, "g-other", "THE VAULT combination is 4-8-15-16"),  # a copy
            ]
        )
        await memory_reached(nc, acks[-1].seq)
        assert (await search(nc, "vault combination"))[0].key == "g-secret/1/s1"

        await send_forget(nc, key="g-secret/1/s1", reason="secret")
        await wait_until(
            lambda: _forgotten_count(nc, 1), timeout_s=30, what="memory_forgotten to be recorded"
        )
        forgotten = [e async for _, e in read_events(nc, "agora.events.*.memory_forgotten")]
        [event] = forgotten
        assert isinstance(event, MemoryForgotten)
        assert (event.goal_id, event.key, event.reason) == ("g-secret", "g-secret/1/s1", "secret")
        await memory_reached(nc, await _last_seq(nc))

        assert [i.key for i in await search(nc, "vault combination")] == ["g-secret/1/s2"]
        await platform.stop("memory")

        # A full rebuild: no usable snapshot (this one is damaged), every event replayed.
        store = await nc.jetstream().object_store(MEMORY_SNAPSHOTS)
        await store.put(SNAPSHOT_NAME, b"\x00 not a snapshot")
        platform.start("memory")
        await memory_reached(nc, await _last_seq(nc))
        after = await stats(nc)
        assert after["snapshot_seq"] == 0
        assert after["replayed_at_start"] == 4
        assert [i.key for i in await search(nc, "vault combination")] == ["g-secret/1/s2"]
        assert await search(nc, "4-8-15-16") == []
    finally:
        await platform.stop()


async def _forgotten_count(nc: NatsClient, n: int) -> bool:
    return len([e async for _, e in read_events(nc, "agora.events.*.memory_forgotten")]) >= n


async def _last_seq(nc: NatsClient) -> int:
    info = await nc.jetstream().stream_info("AGORA_EVENTS")
    return int(info.state.last_seq)


async def test_working_memory_of_500_observations_stays_within_budget_and_shows_compaction(
    nc: NatsClient, settings: Settings
) -> None:
    budget = 400
    platform = InProcessPlatform(replace(settings, memory_working_tokens=budget))
    platform.start("memory", "projector")
    try:
        goal = "g-long"
        await EventPublisher(nc)(
            [
                TaskCompleted(
                    event_id=f"tc-{n}",
                    goal_id=goal,
                    occurred_at=NOW,
                    causation_id=None,
                    correlation_id=goal,
                    producer="executor@0.1.0",
                    iteration=1,
                    task_id=f"s{n}",
                    tool="http_get",
                    output=f"page {n}: the price of product {n % 13} is {100 + n} euros.",
                    attempts=1,
                    duration_ms=1.0,
                )
                for n in range(500)
            ]
        )

        async def all_observed() -> bool:
            try:
                working = (await ask_memory(nc, MemoryRequest(op="working", goal_id=goal))).working
            except MemoryQueryError:  # not answering yet: still starting
                return False
            return int(working["observed"]) == 500

        await wait_until(all_observed, timeout_s=60, what="500 observations in working memory")
        await memory_reached(nc, await _last_seq(nc))
        working = (await ask_memory(nc, MemoryRequest(op="working", goal_id=goal))).working
        assert working["tokens"] <= budget
        # Compacted as the follower folds the observations in (per batch it reads).
        assert working["compactions"] >= 1
        assert working["summary"]
        assert working["observations"][-1]["key"] == f"{goal}/1/s499"

        await projector_caught_up(nc)
        reply = await ask(
            nc,
            "SELECT summary FROM trajectory "
            f"WHERE goal_id = '{goal}' AND type = 'memory_compacted' ORDER BY step",
        )
        assert len(reply.rows) == working["compactions"]
        assert reply.rows[0][0].startswith("compacted ")
        assert f"budget {budget}" in reply.rows[0][0]
        # The observations are the task_completed events themselves: none was re-published.
        assert not await all_events(nc, f"agora.events.{goal}.memory_stored")
    finally:
        await platform.stop()


async def test_a_forget_command_that_names_nothing_goes_to_the_dlq_with_the_reason(
    nc: NatsClient, settings: Settings
) -> None:
    platform = InProcessPlatform(settings)
    platform.start("memory")
    try:
        js = nc.jetstream()
        await js.publish(
            INTAKE_MEMORY_FORGET, b'{"command_id": "c-bad"}', headers={"Nats-Msg-Id": "c-bad"}
        )

        async def dead_lettered() -> bool:
            info = await js.stream_info(DLQ_STREAM)
            return bool(info.state.messages)

        await wait_until(dead_lettered, timeout_s=30, what="the bad command in the DLQ")
        message = await js.get_last_msg(DLQ_STREAM, dlq_subject("memory"))
        letter = decode_dead_letter(message.data or b"")
        assert letter.reason == "undecodable"
        assert "exactly one of `key` or `goal_id`" in letter.error
        assert letter.data == b'{"command_id": "c-bad"}'

        # A bad direct request gets an answer that says why, not a timeout.
        reply = decode_reply((await nc.request(MEMORY_QUERY, b'{"op": "drop"}', timeout=10)).data)
        assert reply.error is not None
        assert reply.error.startswith("not a memory request")
        assert not [e async for _, e in read_events(nc, "agora.events.*.memory_forgotten")]
    finally:
        await platform.stop()


async def test_feedback_that_led_to_a_successful_revision_is_recalled_as_a_lesson(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    slow_goal = {
        "text": "wait for a slow step, then report",
        "steps": [
            # Iteration 1 times out; the revision doubles the budget and iteration 2 succeeds.
            {"tool": "sleep", "args": {"seconds": 0.45}, "timeout_s": 0.3},
            {"tool": "echo", "args": {"text": "the slow step finished"}},
        ],
        "expect": {"contains": "finished"},
        "metadata": {"team": "ops"},
    }
    first = await client.submit({**slow_goal, "goal_id": "slow-1"})
    events = await client.wait_for_outcome(first.goal_id, timeout_s=30)
    assert isinstance(events[-1], GoalCompleted)
    assert events[-1].iterations == 2
    [revise] = [e for e in events if isinstance(e, EvaluationCompleted) and e.verdict == "revise"]

    async def lesson_stored() -> bool:
        lessons = await search(nc, "slow step", kinds=("lesson",))
        return bool(lessons)

    await wait_until(lesson_stored, timeout_s=30, what="the lesson of slow-1")
    [lesson] = await search(nc, "slow step", kinds=("lesson",), metadata={"team": "ops"})
    assert (lesson.goal_id, lesson.source_event_id) == ("slow-1", revise.event_id)
    assert revise.feedback in lesson.text

    # Written once, whichever memory replica decided it first.
    assert len(await all_events(nc, "agora.events.slow-1.memory_stored")) == 1
    context = await ask_context(nc, "slow-2", str(slow_goal["text"]))
    assert lesson.key in [item.key for item in context.items]


async def test_a_context_request_sees_every_item_stored_before_it(
    nc: NatsClient, settings: Settings
) -> None:
    platform = InProcessPlatform(settings)
    platform.start("memory")
    try:
        await memory_reached(nc, 0)  # memory is up and following the log
        request = ContextRequested(
            event_id="cr-late",
            goal_id="g-asker",
            occurred_at=NOW,
            causation_id=None,
            correlation_id="g-asker",
            producer="planner@0.1.0",
            iteration=1,
            query="zebra crossing",
        )
        # 3,000 items then the request, back to back: memory is behind when the request comes.
        filler = [stored(n, f"g-fill-{n % 30}", f"filler note {n}") for n in range(3_000)]
        fact = stored(1, "g-zebra", "the zebra crossing is on Elm St")
        await EventPublisher(nc)([*filler, fact, request])

        async def answered() -> bool:
            return bool(await all_events(nc, "agora.events.g-asker.context_provided"))

        await wait_until(answered, timeout_s=30, what="the context_provided")
        [provided] = await all_events(nc, "agora.events.g-asker.context_provided")
        assert isinstance(provided, ContextProvided)
        assert [item.key for item in provided.items] == ["g-zebra/1/s1"]
    finally:
        await platform.stop()
