"""Goals whose outputs are large -> they finish, each large output stored once and referenced;
an event that still cannot be written -> the goal fails with the reason, never a dead letter."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import EvaluationRequested, GoalCompleted, GoalFailed, TaskCompleted
from events.codec import encode
from events.errors import EventTooLargeError
from events.model import Stamp
from events.subjects import DLQ_STREAM
from infra.bus.connection import connect
from infra.bus.history import read_events
from infra.bus.outputs import OUTPUTS_BUCKET
from infra.bus.publisher import EventPublisher
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import wait_until

BIG = "".join(f"{i:07d} " for i in range(7_500))  # 60,000 characters
FAN_OUT = 10


def _fan_out_goal(big: str, fan_out: int, **extra: Any) -> dict[str, Any]:
    """One echo of ``big``, referred to by ``fan_out`` parallel steps."""
    steps: list[dict[str, Any]] = [{"id": "a", "tool": "echo", "args": {"text": big}}]
    steps += [
        {
            "id": f"b{n}",
            "tool": "echo",
            "args": {"text": "{{steps.a.output}}"},
            "depends_on": ["a"],
        }
        for n in range(fan_out)
    ]
    return {"text": "fan a large output out", "steps": steps, "max_iterations": 1, **extra}


async def _dead_letters(nc: NatsClient) -> int:
    info = await nc.jetstream().stream_info(DLQ_STREAM)
    return int(info.state.messages)


async def test_a_large_output_referred_to_by_ten_parallel_steps_completes(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    submitted = await client.submit(_fan_out_goal(BIG, FAN_OUT, expect={"contains": "0007499"}))

    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)

    outcome = events[-1]
    assert isinstance(outcome, GoalCompleted), outcome
    # Whoever follows the goal gets the whole result back: every sink's output, one a line.
    assert outcome.result == "\n".join([BIG] * FAN_OUT)
    assert all(e.output == BIG for e in events if isinstance(e, TaskCompleted))
    assert await _dead_letters(nc) == 0

    stored = [
        event
        async for _, event in read_events(nc, f"agora.events.{submitted.goal_id}.>", resolve=False)
    ]
    # The intake's own 60 KB (goal_accepted, task_scheduled and tool_called of each step) is
    # the largest thing written; no event copies the outputs of every step.
    largest = max(len(encode(event)) for event in stored)
    assert largest < 2 * len(BIG), largest
    request = next(e for e in stored if isinstance(e, EvaluationRequested))
    assert len(encode(request)) < 16 * 1024
    refs = {t.output_ref.name for t in request.tasks if t.output_ref is not None}
    assert len(refs) == 1  # eleven outputs, one content, stored once
    completed = [e for e in stored if isinstance(e, TaskCompleted)]
    assert all(e.output_ref is not None and e.output_ref.size == len(BIG) for e in completed)

    # The projector's views hold the values themselves.
    async def projected() -> bool:
        reply = await client.query(
            "SELECT count(*) AS n FROM tasks "
            f"WHERE goal_id = '{submitted.goal_id}' AND length(output) = {len(BIG)} "
            f"AND md5(output) = '{hashlib.md5(BIG.encode()).hexdigest()}'"
        )
        return bool(reply.rows) and reply.rows[0][0] == FAN_OUT + 1

    await wait_until(projected, timeout_s=20, what="every task's full output in the tasks view")


async def test_an_event_too_large_to_write_fails_the_goal_with_the_reason(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    # A step whose arguments join twenty copies of the large output: its task_scheduled
    # (1.2 MB) is over the message limit whatever is stored elsewhere.
    goal = _fan_out_goal(BIG, 2)
    goal["steps"].append(
        {
            "id": "join",
            "tool": "echo",
            "args": {"text": "{{steps.b0.output}}{{steps.b1.output}}" * 10},
            "depends_on": ["b0", "b1"],
        }
    )
    submitted = await client.submit(goal)

    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)

    outcome = events[-1]
    assert isinstance(outcome, GoalFailed), outcome
    assert "task_scheduled" in outcome.reason
    assert "too large" in outcome.reason
    assert await _dead_letters(nc) == 0


async def test_outputs_are_shared_by_identity_under_the_generated_permissions(
    secure_settings: Settings,
) -> None:
    admin = await connect(secure_settings, "test-admin", identity="admin")
    await provision(admin.jetstream(), secure_settings)
    platform = InProcessPlatform(secure_settings)
    platform.start()
    client_nc = await connect(secure_settings, "test-client", identity="client")
    try:
        client = AgoraClient(client_nc)
        submitted = await client.submit(_fan_out_goal(BIG, 2))
        events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)
        outcome = events[-1]
        # The executor and planner stored the outputs; the client reads them back.
        assert isinstance(outcome, GoalCompleted), outcome
        assert outcome.result == f"{BIG}\n{BIG}"
        # ... and may not add objects of its own, nor may a service remove one.
        bucket = await client_nc.jetstream().object_store(OUTPUTS_BUCKET)
        with pytest.raises(Exception):  # noqa: B017, PT011  refused: no answer, a timeout
            await asyncio.wait_for(bucket.put("forged", b"x"), 2)
        executor = await connect(secure_settings, "test-executor", identity="executor")
        try:
            with pytest.raises(Exception):  # noqa: B017, PT011
                await asyncio.wait_for(
                    executor.jetstream().purge_stream(f"OBJ_{OUTPUTS_BUCKET}"), 2
                )
        finally:
            await executor.close()
        info = await admin.jetstream().stream_info(f"OBJ_{OUTPUTS_BUCKET}")
        assert info.state.messages >= 2  # the output (one chunk, one meta), still there
    finally:
        await client_nc.close()
        await platform.stop()
        await admin.close()


async def test_a_stream_that_refuses_an_event_as_too_large_is_read_as_such(
    nats_server: EmbeddedNats, settings: Settings
) -> None:
    # A stream configured below the server's payload limit: the publisher's own check
    # passes, the stream refuses (err_code 10054), and the caller still learns it can never
    # be written, not a retryable refusal.
    small = replace(settings, max_message_bytes=256 * 1024, max_intake_bytes=64 * 1024)
    nc = await connect(small, "agora-test")
    try:
        await provision(nc.jetstream(), small)
        stamp = Stamp("planner@test", "g-refused", datetime.now(UTC), None, "g-refused")
        event = GoalCompleted(
            **stamp.envelope("goal_completed", "x"), result="x" * 300_000, iterations=1, score=1.0
        )
        with pytest.raises(EventTooLargeError, match="goal_completed is too large"):
            await EventPublisher(nc, timeout_s=10)([event])
    finally:
        await nc.close()
