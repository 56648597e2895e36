"""A client's W3C trace context, end to end on a real nats-server and real services: the
``traceparent`` sent with a goal reaches its first event, and the goal's trace, exported by
the OpenTelemetry SDK's OTLP/HTTP exporter to a receiver that decodes the protocol's own
messages, is in the client's trace under the client's span. A header that is not trace
context is ignored (the goal has a trace of its own); the client refuses to send one."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from events.catalog import GoalAccepted
from events.subjects import INTAKE_GOAL, INTAKE_STREAM
from infra.clients.goals import AgoraClient, SubmitError
from infra.settings import Settings
from infra.traces.follower import TraceExporter
from infra.traces.otlp import TraceTarget
from infra.traces.receiver import OtlpReceiver
from projections.spans import trace_id_of
from tests.conftest import InProcessPlatform

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
STEPS = [{"tool": "calculator", "args": {"expression": "6*7"}}]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", running.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        yield running


async def test_a_goal_sent_with_a_traceparent_is_traced_under_the_clients_span(
    client: AgoraClient, nc: NatsClient, platform: InProcessPlatform, receiver: OtlpReceiver
) -> None:
    header = f"00-{TRACE}-{SPAN}-01"
    traced = await client.submit({"text": "multiply", "steps": STEPS}, traceparent=header)
    outcome = await client.wait(traced.goal_id, timeout_s=30)
    assert outcome.completed
    [accepted] = [e for e in outcome.events if isinstance(e, GoalAccepted)]
    assert accepted.traceparent == header

    # Any client, without the library: the header on the intake message is all it takes.
    # Not trace context: ignored, the goal traced on its own.
    await nc.jetstream().publish(
        INTAKE_GOAL,
        msgspec.json.encode({"goal_id": "g-untraced", "text": "multiply", "steps": STEPS}),
        stream=INTAKE_STREAM,
        headers={"Nats-Msg-Id": "c-untraced", "traceparent": f"00-{TRACE}-{'0' * 16}-01"},
    )
    assert (await client.wait("g-untraced", timeout_s=30)).completed

    target = TraceTarget("test", Settings.from_env().otlp)
    exporter = TraceExporter(nc, target)
    try:
        for goal_id in (traced.goal_id, "g-untraced"):
            await exporter.export_goal(goal_id)
    finally:
        target.close()

    spans = list(receiver.spans())
    by_goal: dict[str, list[Span]] = {}
    for span in spans:
        conversation = next(
            a.value.string_value for a in span.attributes if a.key == "gen_ai.conversation.id"
        )
        by_goal.setdefault(conversation, []).append(span)
    mine = by_goal[traced.goal_id]
    assert len(mine) >= 3  # the workflow, the planner's turn, the task and its call
    assert {s.trace_id.hex() for s in mine} == {TRACE}
    roots = [s for s in mine if s.name == "invoke_workflow agora"]
    assert [r.parent_span_id.hex() for r in roots] == [SPAN]
    own = by_goal["g-untraced"]
    assert {s.trace_id.hex() for s in own} == {f"{trace_id_of('g-untraced'):032x}"}
    [own_root] = [s for s in own if s.name == "invoke_workflow agora"]
    assert own_root.parent_span_id == b""


async def test_the_client_refuses_a_traceparent_that_is_not_trace_context(
    client: AgoraClient,
) -> None:
    with pytest.raises(SubmitError, match="not W3C trace context"):
        await client.submit({"text": "x"}, traceparent="00-abc-def-01")
