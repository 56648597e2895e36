"""``agora status`` and the services' stats endpoints tell the truth about a running platform.

The evaluator is stopped while goals arrive: its consumer's lag must equal the evaluation
requests waiting in the log, and status must say that no evaluator process answers. A poison
intake adds one dead letter. The evaluator back, every goal completes: lag 0, and the counters
of each service add up to what the log holds.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.js.errors
from nats.aio.client import Client as NatsClient

from events.catalog import EvaluationRequested, GoalCompleted, TaskScheduled
from events.subjects import INTAKE_GOAL
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.clients.status import gather_status, monitor_url_of
from infra.platform.embedded import EmbeddedNats
from infra.platform.stats import collect_stats, stats_subject
from infra.platform.topology import consumers_for
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import all_events, wait_until

GOALS = 5


def _goal(n: int) -> dict[str, object]:
    return {
        "goal_id": f"g-status-{n}",
        "text": "echo",
        "steps": [{"tool": "echo", "args": {"text": f"hello {n}"}}],
    }


def _consumer(status: dict[str, object], stream: str, durable: str) -> dict[str, object]:
    rows = status["consumers"]
    assert isinstance(rows, list)
    return next(r for r in rows if (r["stream"], r["consumer"]) == (stream, durable))


async def test_status_shows_lag_dead_letters_and_counters_that_match_the_log(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    await platform.stop("evaluator")
    for n in range(GOALS):
        await client.submit(_goal(n))
    await nc.jetstream().publish(INTAKE_GOAL, b"\xff not json", headers={"Nats-Msg-Id": "c-bad"})

    async def requests_waiting() -> bool:
        log = await all_events(nc)
        return sum(isinstance(e, EvaluationRequested) for e in log) == GOALS

    await wait_until(requests_waiting, timeout_s=20, what="every goal waiting for its verdict")

    async def dead_letter_recorded() -> bool:
        return (await gather_status(nc, stats_timeout_s=0.3))["dead_letters"]["records"] == 1

    await wait_until(dead_letter_recorded, timeout_s=10, what="the poison intake dead-lettered")

    stalled = await gather_status(nc)
    evaluator = _consumer(stalled, "AGORA_EVENTS", "evaluator")
    assert (evaluator["pending"], evaluator["ack_pending"]) == (GOALS, 0)
    assert stalled["services"]["evaluator"]["replicas"] == 0
    assert "no evaluator process answers" in stalled["problems"]
    assert stalled["dead_letters"]["by_consumer"] == {"planner": 1}
    assert any("dead letter" in p for p in stalled["problems"])
    assert stalled["server"]["version"]
    # AGORA_INTAKE, AGORA_EVENTS, AGORA_DLQ and memory's snapshot bucket.
    assert stalled["server"]["jetstream"]["streams"] == 5  # with both object store buckets
    assert stalled["projector"]["running"]

    platform.start("evaluator")
    for n in range(GOALS):
        outcome = await client.wait_for_outcome(f"g-status-{n}", timeout_s=30)
        assert isinstance(outcome[-1], GoalCompleted)

    log = await all_events(nc)
    tasks = sum(isinstance(e, TaskScheduled) for e in log)
    done = await gather_status(nc)

    async def executor_counted() -> bool:
        counts = (await gather_status(nc, stats_timeout_s=0.3))["services"]["executor"]
        return counts["consumers"]["AGORA_EVENTS/executor"]["handled"] == tasks

    # The executor acks after its handler returned: its count may trail the log briefly.
    await wait_until(executor_counted, timeout_s=10, what="the executor's count")
    assert _consumer(done, "AGORA_EVENTS", "evaluator")["pending"] == 0
    for name in ("planner", "executor", "memory", "evaluator", "projector"):
        assert done["services"][name]["replicas"] == 1, name
    planner = done["services"]["planner"]["consumers"]
    assert planner["AGORA_INTAKE/planner"]["handled"] == GOALS  # the poison one failed
    assert planner["AGORA_INTAKE/planner"]["failed"] == 1
    assert "no evaluator process answers" not in done["problems"]

    async def projector_caught_up() -> bool:
        projector = (await gather_status(nc, stats_timeout_s=0.3))["projector"]
        return projector["lag"] == 0 and projector["applied_seq"] == len(log)

    await wait_until(projector_caught_up, timeout_s=20, what="the projector at the log's end")


async def test_each_service_answers_on_its_stats_endpoint(
    nc: NatsClient, platform: InProcessPlatform, nats_server: EmbeddedNats
) -> None:
    expected = sorted(
        f"agora-{s}" for s in ("planner", "executor", "memory", "evaluator", "projector")
    )

    async def all_registered() -> bool:
        return sorted(r["name"] for r in await collect_stats(nc, timeout_s=0.3)) == expected

    await wait_until(all_registered, timeout_s=10, what="every service's stats")
    reply = await nc.request(stats_subject("executor"), b"", timeout=5)
    stats = msgspec.json.decode(reply.data)
    assert stats["service"] == "executor"
    assert set(stats["consumers"]) == {
        "AGORA_EVENTS/executor",
        "AGORA_INTAKE/executor",  # the durable timers' wake-ups
        "AGORA_DLQ/redrive-executor",
    }
    assert stats["uptime_s"] >= 0

    # The server as its monitoring port sees it: five services and this test connected.
    server = (await gather_status(nc, monitor_url=nats_server.monitor_url))["server"]
    assert server["server_name"] == "agora"
    assert server["connections"] >= 6
    unreachable = (await gather_status(nc, monitor_url="http://127.0.0.1:9"))["server"]
    assert "monitor_error" in unreachable
    assert unreachable["version"] == server["version"]  # from INFO, the same as /varz's
    assert unreachable["jetstream"]["streams"] == 5  # what the JetStream API still shows


def test_the_embedded_servers_monitoring_url_is_found_through_its_discovery_file(
    tmp_path: Path,
) -> None:
    embedded = replace(Settings(), data_dir=tmp_path)
    assert monitor_url_of(embedded) is None  # no server.json: no server running
    (tmp_path / "nats").mkdir()
    (tmp_path / "nats" / "server.json").write_text(
        json.dumps({"pid": 1, "url": "nats://127.0.0.1:4222", "monitor": "http://127.0.0.1:8222"})
    )
    assert monitor_url_of(embedded) == "http://127.0.0.1:8222"
    external = replace(embedded, nats_urls=("nats://elsewhere:4222",))
    assert monitor_url_of(external) is None  # only known for the embedded server


async def test_a_full_store_is_a_problem_and_a_nearly_full_one_a_warning(tmp_path: Path) -> None:
    limit = 2 * 1024 * 1024
    with EmbeddedNats(tmp_path / "small", durability="os", max_store_bytes=limit) as server:
        settings = replace(Settings(), data_dir=tmp_path / "small-data", nats_urls=(server.url,))
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await provision(js, settings)
            assert not _storage_problems(await gather_status(nc, monitor_url=server.monitor_url))
            chunk = b"x" * (64 * 1024)
            refused = False
            for n in range(limit // len(chunk) + 8):  # more than fits: the store refuses
                try:
                    await js.publish(f"agora.events.g-full.filler_{n}", chunk)
                except nats.js.errors.APIError:
                    refused = True
                    break
            assert refused, "the store took more than its limit"
            status = await gather_status(nc, monitor_url=server.monitor_url)
            problems = _storage_problems(status)
            assert any("JetStream store is full" in p for p in problems), status["problems"]
            assert any(s["limit"] == limit for s in status["storage"])
        finally:
            await nc.close()


def _storage_problems(status: dict[str, Any]) -> list[str]:
    return [p for p in status["problems"] if "full" in p]


async def test_a_consumer_with_work_and_no_acks_is_stalled(
    nc: NatsClient, settings: Settings
) -> None:
    await provision(nc.jetstream(), settings, [(consumers_for("planner")[0], 8)])
    await AgoraClient(nc).submit(_goal(99))  # waits on the planner's intake consumer
    now = datetime.now(UTC)
    fresh = await gather_status(nc, stats_timeout_s=0.1, now=now)
    assert not [p for p in fresh["problems"] if "stalled" in p]
    later = await gather_status(nc, stats_timeout_s=0.1, now=now + timedelta(seconds=120))
    stalled = [p for p in later["problems"] if "stalled" in p]
    assert stalled == [
        "consumer AGORA_INTAKE/planner is stalled: 1 message(s) waiting, nothing acknowledged"
        " for 120s"
    ], later["problems"]
