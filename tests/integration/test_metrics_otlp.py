"""OpenTelemetry metrics from the log, end to end on a real nats-server and real services,
exported by the OpenTelemetry SDK's OTLP exporters to a receiver that decodes the protocol's own
messages: the live follower over gRPC, then ``agora metrics export`` over HTTP/protobuf.

Goals run (one planned by a scripted real-HTTP model with a ReAct task, a judge and a revision;
explicit ones; a rejected one), then the evaluator is stopped so a last goal waits in its
queue. Both exports must count exactly what ``goal_stats`` says (goals by status, tokens) and
see the waiting goal as the evaluator consumer's lag.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from events.subjects import EVENTS_STREAM
from infra.bus.reader import stream_last_seq
from infra.clients.goals import AgoraClient
from infra.metrics.follower import MetricsFollower
from infra.metrics.otlp import MetricsTarget
from infra.platform.topology import SERVICE_CONSUMERS
from infra.settings import Settings
from infra.traces.receiver import OtlpReceiver
from tests.conftest import InProcessPlatform
from tests.integration.test_llm_goal import ACCEPT, BETTER_PLAN, REACT_PLAN, plans
from tests.llm_servers import ScriptedLlmServer, llm_settings
from tests.support import wait_until

REVISE = {"score": 0.3, "verdict": "revise", "feedback": "say: the answer is N", "criteria": []}
STEPS = [{"tool": "calculator", "args": {"expression": "6*7"}}]

pytestmark = pytest.mark.slow


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, str]:
    return {pair.key: pair.value.string_value for pair in pairs}


def _latest(receiver: OtlpReceiver) -> dict[str, Metric]:
    """Each metric as its last export sent it (the data is cumulative)."""
    return {metric.name: metric for metric in receiver.metric_points()}


def _check(metrics: dict[str, Metric], stats: dict[str, Any]) -> None:
    """What was exported against what ``goal_stats`` and the events view say."""
    finished = {
        _attributes(p.attributes)["agora.goal.status"]: p.as_int
        for p in metrics["agora.goals.finished"].sum.data_points
    }
    assert finished == {s: n for s, n in stats["goals"].items() if s != "running"}
    [accepted] = metrics["agora.goals.accepted"].sum.data_points
    assert accepted.as_int == sum(n for s, n in stats["goals"].items() if s != "rejected")
    assert metrics["agora.goals.finished"].sum.is_monotonic

    usage = metrics["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    by_type: dict[str, float] = {}
    for point in usage.histogram.data_points:
        labels = _attributes(point.attributes)
        assert labels["gen_ai.operation.name"] == "chat"
        assert labels["gen_ai.provider.name"] == "openai"
        assert labels["gen_ai.request.model"] == "scripted-openai"
        by_type[labels["gen_ai.token.type"]] = by_type.get(labels["gen_ai.token.type"], 0) + (
            point.sum
        )
        assert point.count == stats["llm_calls"]
        assert list(point.explicit_bounds)[:3] == [1, 4, 16]  # the conventions' advice
    assert by_type == {"input": stats["tokens_in"], "output": stats["tokens_out"]}

    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    [calls] = duration.histogram.data_points
    assert calls.count == stats["llm_calls"]
    assert calls.sum == pytest.approx(stats["latency_s"])

    lag = {
        _attributes(p.attributes)["messaging.consumer.group.name"]: p.as_int
        for p in metrics["agora.consumer.lag"].gauge.data_points
    }
    assert set(lag) == set(SERVICE_CONSUMERS)  # every service's consumer is sampled
    assert lag["evaluator"] == 1  # the waiting goal's evaluation_requested


async def _rows(client: AgoraClient, sql: str, last_seq: int) -> list[dict[str, Any]]:
    reply = await client.query(sql, min_seq=last_seq)
    return [dict(zip(reply.columns, row, strict=True)) for row in reply.rows]


async def _goal_stats(client: AgoraClient, last_seq: int) -> dict[str, Any]:
    rows = await _rows(
        client,
        "SELECT status, sum(goals) AS goals, sum(tokens_in) AS tokens_in, "
        "sum(tokens_out) AS tokens_out FROM goal_stats GROUP BY status",
        last_seq,
    )
    [calls] = await _rows(
        client,
        "SELECT count(*) AS calls, "
        "sum(CAST(payload->>'latency_ms' AS DOUBLE)) / 1000 AS latency_s "
        "FROM events WHERE type = 'llm_responded'",
        last_seq,
    )
    return {
        "goals": {row["status"]: row["goals"] for row in rows},
        "tokens_in": sum(row["tokens_in"] for row in rows),
        "tokens_out": sum(row["tokens_out"] for row in rows),
        "llm_calls": calls["calls"],
        "latency_s": calls["latency_s"],
    }


async def _run_goals(client: AgoraClient, nc: NatsClient, platform: InProcessPlatform) -> str:
    planned = await client.submit({"text": "compute 17*23 then say the product"})
    explicit = await client.submit({"text": "multiply", "steps": STEPS})
    wrong = await client.submit(
        {"text": "multiply", "steps": STEPS, "expect": {"contains": "nope"}, "max_iterations": 1}
    )
    rejected = await client.submit({"text": "x", "steps": [{"tool": "no-such-tool"}]})
    for submitted in (planned, explicit, wrong, rejected):
        await client.wait(submitted.goal_id, timeout_s=60)

    await platform.stop("evaluator")
    waiting = await client.submit({"text": "waits for its judge", "steps": STEPS})
    js = nc.jetstream()

    async def asked_to_judge() -> bool:
        try:
            await js.get_last_msg(
                EVENTS_STREAM, f"agora.events.{waiting.goal_id}.evaluation_requested"
            )
        except Exception:
            return False
        return True

    await wait_until(asked_to_judge, what="the waiting goal's evaluation_requested")
    return waiting.goal_id


async def test_metrics_from_the_log_add_up_to_goal_stats(
    settings: Settings,
    nc: NatsClient,
    openai_server: ScriptedLlmServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    openai_server.set_script(plans(REACT_PLAN, BETTER_PLAN, verdicts=(REVISE, ACCEPT)))
    llm = llm_settings(settings, openai_server)
    platform = InProcessPlatform(llm)
    platform.start()
    client = AgoraClient(nc)
    try:
        with OtlpReceiver() as live:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", live.grpc_endpoint)
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            follower = MetricsFollower(nc, MetricsTarget("test", Settings.from_env().otlp_metrics))
            stop = asyncio.Event()
            # Exports only when stopped: the test decides when the counts are complete.
            following = asyncio.ensure_future(follower.follow(1, stop, interval_s=3600))
            await _run_goals(client, nc, platform)
            stats = await _goal_stats(client, await stream_last_seq(nc, EVENTS_STREAM))
            assert stats["goals"]["completed"] >= 2
            assert {"failed", "rejected", "running"} <= set(stats["goals"])
            assert stats["llm_calls"] >= 7
            expected = (
                sum(stats["goals"].values()) * 2
                - (stats["goals"]["rejected"] + stats["goals"]["running"])
                + stats["llm_calls"]
            )

            async def all_measured() -> bool:
                return follower.measured == expected

            await wait_until(all_measured, what=f"the follower measuring {expected} events")
            stop.set()
            await following
            follower.target.close()
            _check(_latest(live), stats)

        with OtlpReceiver() as receiver:
            env = {
                **os.environ,
                **settings.to_env(),
                "AGORA_LOG_LEVEL": "error",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",  # the signal's own wins
            }
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "infra.cli",
                "metrics",
                "export",
                "--since",
                "1",
                env=env,
                stderr=asyncio.subprocess.PIPE,
            )
            _, stderr = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, stderr.decode()
            assert f"{receiver.endpoint}/v1/metrics" in stderr.decode()
            _check(_latest(receiver), stats)
    finally:
        await platform.stop()
