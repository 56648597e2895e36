"""The live trace follower on a real nats-server and real services: a goal it saw begin is
traced from the events it read, one that began before it started is read in full, and both
send exactly the spans a one-off export of the goal sends (decoded by an OTLP receiver)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from nats.aio.client import Client as NatsClient

from events.subjects import goal_events_filter
from infra.bus.history import read_events
from infra.clients.goals import AgoraClient
from infra.settings import Settings
from infra.traces.follower import Exported, TraceExporter
from infra.traces.otlp import TraceTarget
from infra.traces.receiver import OtlpReceiver
from tests.conftest import InProcessPlatform
from tests.support import wait_until

STEPS = [
    {"id": "a", "tool": "calculator", "args": {"expression": "6*7"}},
    {"id": "b", "tool": "echo", "args": {"text": "{{steps.a.output}}"}, "depends_on": ["a"]},
]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(grpc_metrics=False) as running:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", running.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        yield running


def _spans(receiver: OtlpReceiver, goal_id: str) -> set[bytes]:
    return {
        span.SerializeToString(deterministic=True)
        for span in receiver.spans()
        if any(a.value.string_value == goal_id for a in span.attributes)
    }


async def test_the_follower_sends_the_spans_a_one_off_export_sends(
    client: AgoraClient, nc: NatsClient, platform: InProcessPlatform, receiver: OtlpReceiver
) -> None:
    earlier = await client.submit({"text": "before the follower", "steps": STEPS})
    assert (await client.wait(earlier.goal_id, timeout_s=30)).completed
    # The follower starts after the earlier goal's first event, before its end.
    seqs = [s async for s, _ in read_events(nc, goal_events_filter(earlier.goal_id))]
    target = TraceTarget("test", Settings.from_env().otlp)
    follower = TraceExporter(nc, target)
    exported: list[Exported] = []
    stop = asyncio.Event()
    following = asyncio.ensure_future(follower.follow(seqs[1], stop, exported.append))
    try:
        later = await client.submit({"text": "while it follows", "steps": STEPS})
        assert (await client.wait(later.goal_id, timeout_s=30)).completed

        async def both_exported() -> bool:
            return {e.goal_id for e in exported} >= {earlier.goal_id, later.goal_id}

        await wait_until(both_exported, what="the follower exporting both goals")
    finally:
        stop.set()
        await following
    followed = {g: _spans(receiver, g) for g in (earlier.goal_id, later.goal_id)}
    assert all(len(spans) >= 4 for spans in followed.values())  # root, turns, tasks, calls

    receiver.traces.clear()
    for goal_id in followed:
        await follower.export_goal(goal_id)
    target.close()
    assert {g: _spans(receiver, g) for g in followed} == followed
