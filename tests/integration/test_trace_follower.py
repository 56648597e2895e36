"""The live trace follower on a real nats-server and real services: a goal it saw begin is
traced from the events it read, one that began before it started is read in full, and both
send exactly the spans a one-off export of the goal sends (decoded by an OTLP receiver). A goal
that runs on is held only up to a count of events: its trace so far arrives, then its whole
trace once it ends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import ToolCalled
from events.subjects import EVENTS_STREAM, goal_events_filter
from infra.bus.history import read_events
from infra.bus.reader import stream_last_seq
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


def _root_status(receiver: OtlpReceiver, goal_id: str) -> list[str]:
    """The ``agora.goal.status`` of every root span of the goal's trace received so far."""
    return [
        a.value.string_value
        for span in receiver.spans()
        if span.name == "invoke_workflow agora"
        and any(a.value.string_value == goal_id for a in span.attributes)
        for a in span.attributes
        if a.key == "agora.goal.status"
    ]


def _spans(receiver: OtlpReceiver, goal_id: str) -> set[bytes]:
    return {
        span.SerializeToString(deterministic=True)
        for span in receiver.spans()
        if any(a.value.string_value == goal_id for a in span.attributes)
    }


@pytest.mark.parametrize("content", [False, True], ids=["lean", "with content"])
async def test_the_follower_sends_the_spans_a_one_off_export_sends(
    client: AgoraClient,
    nc: NatsClient,
    platform: InProcessPlatform,
    receiver: OtlpReceiver,
    content: bool,
) -> None:
    """Without content the follower builds spans from its lean reading of the events, with
    content from the catalogue's events and their outputs; a one-off export always reads the
    goal's history in full through the timeline."""
    earlier = await client.submit({"text": "before the follower", "steps": STEPS})
    assert (await client.wait(earlier.goal_id, timeout_s=30)).completed
    # The follower starts after the earlier goal's first event, before its end.
    seqs = [s async for s, _ in read_events(nc, goal_events_filter(earlier.goal_id))]
    target = TraceTarget("test", Settings.from_env().otlp)
    follower = TraceExporter(nc, target, content=content)
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
    results = [
        a.value.string_value
        for span in receiver.spans()
        for a in span.attributes
        if a.key == "gen_ai.tool.call.result"
    ]
    assert sorted(results) == (["42", "42", "42", "42"] if content else [])

    receiver.traces.clear()
    for goal_id in followed:
        await follower.export_goal(goal_id)
    target.close()
    assert {g: _spans(receiver, g) for g in followed} == followed


async def test_a_goal_that_runs_on_is_held_only_up_to_the_cap_and_its_trace_so_far_arrives(
    client: AgoraClient, nc: NatsClient, platform: InProcessPlatform, receiver: OtlpReceiver
) -> None:
    target = TraceTarget("test", Settings.from_env().otlp)
    cap = 4  # goal_accepted, plan_created, then the first task's scheduling and call
    follower = TraceExporter(nc, target, max_events=cap)
    exported: list[Exported] = []
    most_held: list[int] = []

    def said(done: Exported) -> None:
        exported.append(done)
        most_held.append(follower.held.events)

    stop = asyncio.Event()
    start = await stream_last_seq(nc, EVENTS_STREAM) + 1
    following = asyncio.ensure_future(follower.follow(start, stop, said))
    try:
        steps = [
            {"tool": "echo", "args": {"text": "one"}},
            {"tool": "echo", "args": {"text": "two"}},
            {"tool": "sleep", "args": {"seconds": 60}},
        ]
        runs_on = (await client.submit({"text": "runs on", "steps": steps})).goal_id

        async def sleeping() -> bool:
            log = [e async for _, e in read_events(nc, goal_events_filter(runs_on))]
            return any(isinstance(e, ToolCalled) and e.tool == "sleep" for e in log)

        await wait_until(sleeping, what="the goal's third step to start its sleep")
        # The follower reads in stream order: once it exported a goal that ended after the
        # sleep began, it has read every event of the goal that runs on.
        short = await client.submit({"text": "ends", "steps": STEPS})
        assert (await client.wait(short.goal_id, timeout_s=30)).completed

        async def exported_goal(goal_id: str, *, ended: bool) -> bool:
            return any(e.goal_id == goal_id and e.ended is ended for e in exported)

        await wait_until(lambda: exported_goal(short.goal_id, ended=True), what="the short goal")
        assert [e.ended for e in exported if e.goal_id == runs_on] == [False]
        assert (len(follower.held), follower.held.events) == (0, 0)
        assert max(most_held) <= cap
        assert _root_status(receiver, runs_on) == ["running"]
        so_far = _spans(receiver, runs_on)
        assert len(so_far) >= 3  # the root, the planner's turn, the first task

        await client.answer(await client.cancel(runs_on, reason="enough"), timeout_s=10)
        await wait_until(lambda: exported_goal(runs_on, ended=True), what="the whole trace")
    finally:
        stop.set()
        await following
        target.close()
    assert _root_status(receiver, runs_on) == ["running", "cancelled"]
    whole = {
        span.span_id: span
        for span in receiver.spans()
        if any(a.value.string_value == runs_on for a in span.attributes)
    }
    # The trace so far and the whole trace share their spans' ids; the whole one has them all.
    assert len(whole) > len(so_far) >= 3
    roots = [s for s in whole.values() if not s.parent_span_id]
    assert len(roots) == 1
    assert all(s.parent_span_id in whole for s in whole.values() if s.parent_span_id)
