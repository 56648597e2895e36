"""A client cannot aim a service's answer at the log, the dead letters or the JetStream API.

The reply subject of a request is the requester's choice. Against the permission table
``agora up`` generates (``secure_settings``) and the whole platform running, the client sends
every request a service answers with a reply subject that a stream records or that acts on
the bus. Nothing may reach ``AGORA_EVENTS`` or ``AGORA_DLQ``, and afterwards every service
still answers requests sent the ordinary way (onto an inbox).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient

from events.subjects import DLQ_STREAM, EVENTS_STREAM, QUERY_SUBJECT
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.memory import ask_memory
from infra.clients.query import ask
from infra.platform.auth import ADMIN, CLIENT, permissions
from infra.platform.runner import SERVICES
from infra.platform.stats import collect_stats, micro_name
from infra.settings import Settings
from projections.protocol import PROJECTOR_CONTROL
from services.memory.protocol import MEMORY_QUERY, MemoryRequest
from tests.conftest import InProcessPlatform
from tests.support import wait_until

GOAL = "g-reflected"
# Reply subjects an attacker would choose: an event the planner itself may publish (so only
# the service's own check stops it), one memory owns, dead letters, and JetStream API calls.
HOSTILE_REPLIES = (
    f"agora.events.{GOAL}.goal_failed",
    f"agora.events.{GOAL}.memory_stored",
    f"agora.events.{GOAL}.tool_called",
    "agora.dlq.planner",
    "agora.dlq.memory",
    f"$JS.API.STREAM.PURGE.{EVENTS_STREAM}",
    f"$JS.API.CONSUMER.DELETE.{EVENTS_STREAM}.planner",
    "agora.intake.goal",
)


def _requests() -> list[tuple[str, bytes]]:
    """Every request/reply subject a service answers that the client may publish to."""
    service_requests = [
        (QUERY_SUBJECT, json.dumps({"sql": "SELECT 1"}).encode()),
        (MEMORY_QUERY, json.dumps({"op": "stats"}).encode()),
        (PROJECTOR_CONTROL, b"status"),
        (PROJECTOR_CONTROL, b"nonsense"),
        *((f"$SRV.{verb}", b"") for verb in ("PING", "INFO", "STATS")),
        *(
            (f"$SRV.{verb}.{micro_name(name)}", b"")
            for verb in ("PING", "INFO", "STATS")
            for name in SERVICES
        ),
        *((f"agora.{name}.stats", b"") for name in SERVICES),
    ]
    # The table must not grant the client a request subject this test does not try.
    client = permissions(CLIENT)
    assert client is not None
    tried = {subject for subject, _ in service_requests}
    granted = {s for s in client.publish_allow if not s.startswith(("$JS", "agora.intake"))}
    assert granted - tried <= {"$SRV.>"}, granted - tried
    return service_requests


async def _stored(admin: NatsClient, stream: str) -> int:
    return int((await admin.jetstream().stream_info(stream)).state.messages)


@pytest.fixture
async def admin(secure_settings: Settings) -> AsyncIterator[NatsClient]:
    nc = await connect(secure_settings, "test-admin", identity=ADMIN)
    await provision(nc.jetstream(), secure_settings)
    yield nc
    await nc.close()


async def test_no_answer_reaches_the_log_or_the_dead_letters(
    secure_settings: Settings, admin: NatsClient
) -> None:
    platform = InProcessPlatform(secure_settings)
    platform.start()
    client = await connect(secure_settings, "test-attacker", identity=CLIENT)
    try:
        # Every service is up and answering before the attack (so silence below is refusal).
        await _every_service_answers(client)
        for subject, body in _requests():
            for reply in HOSTILE_REPLIES:
                await client.publish(subject, body, reply=reply)
        await client.flush()
        # Each service answers the ordinary requests sent after the hostile ones, on the
        # same connections, so any hostile answer was published before these replies.
        await _every_service_answers(client)
        assert await _stored(admin, EVENTS_STREAM) == 0
        assert await _stored(admin, DLQ_STREAM) == 0
        consumer = await admin.jetstream().consumer_info(EVENTS_STREAM, "planner")
        assert consumer.config.durable_name == "planner"
    finally:
        await client.close()
        await platform.stop()


async def _every_service_answers(client: NatsClient) -> None:
    expected = {micro_name(name) for name in SERVICES}
    deadline = asyncio.get_running_loop().time() + 20.0
    answered: set[str] = set()
    while not expected <= answered and asyncio.get_running_loop().time() < deadline:
        answered = {str(reply["name"]) for reply in await collect_stats(client)}
    assert expected <= answered
    assert (await ask(client, "SELECT 1", timeout_s=10.0)).rows == [[1]]
    assert (await ask_memory(client, MemoryRequest(op="stats"))).error is None
    control = await client.request(PROJECTOR_CONTROL, b"status", timeout=10.0)
    assert "last_seq" in json.loads(control.data)


def _jetstream_requests() -> list[str]:
    """Every JetStream subject the client may publish to, wildcards filled in."""
    client = permissions(CLIENT)
    assert client is not None
    subjects = [s for s in client.publish_allow if s.startswith(("$JS", "agora.intake"))]
    filled = [s.replace(".*.*", f".{EVENTS_STREAM}.reader") for s in subjects]
    filled = [s.replace(".*", f".{EVENTS_STREAM}").replace(".>", ".goal") for s in filled]
    assert "agora.intake.goal" in filled
    return filled


async def test_jetstream_answers_do_not_reach_the_log(
    secure_settings: Settings, admin: NatsClient
) -> None:
    """JetStream answers a publish or an API call itself, onto the reply the client chose."""
    client = await connect(secure_settings, "test-attacker", identity=CLIENT)
    try:
        for n, subject in enumerate(_jetstream_requests()):
            for reply in HOSTILE_REPLIES:
                body = json.dumps({"text": "echo hi", "command_id": f"c-{n}-{reply}"})
                await client.publish(subject, body.encode(), reply=reply)
        await client.flush()

        async def intake_stored() -> bool:
            return await _stored(admin, "AGORA_INTAKE") > 0

        # The intake publishes are stored, so JetStream has sent its acknowledgements.
        await wait_until(intake_stored, timeout_s=10, what="the intake publishes")
        assert (await client.jetstream().account_info()).streams >= 3  # reads still work
        assert await _stored(admin, EVENTS_STREAM) == 0
        assert await _stored(admin, DLQ_STREAM) == 0
    finally:
        await client.close()
