"""Acceptance 1 of issue 8: the generated configuration lets each identity do its job, no more.

A real nats-server with the permission table of infra/platform/auth.py (the ``secure_settings``
fixture, as ``agora up`` configures it): the whole platform still runs a goal to its end,
while a service publishing another's event type, a non-admin purging or deleting a stream,
anonymous clients and wrong passwords are all refused by the server.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig

from events.catalog import PlanCreated
from events.errors import AgoraError, ConfigurationError
from events.model import Stamp
from events.subjects import EVENTS_STREAM, INTAKE_STREAM, INTAKE_WAKEUP
from events.timers import Wakeup, timer_subject
from infra.bus.connection import connect
from infra.bus.publisher import EventPublisher
from infra.bus.reader import StreamReader
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.clients.query import ask, projector_caught_up
from infra.mcp.catalogue import read_listings
from infra.platform.auth import ADMIN, credentials_path, load_credentials
from infra.platform.topology import consumers_for
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import wait_until

# A refused request gets no answer at all: the server drops it and reports the violation.
REFUSED_WITHIN_S = 1.0


async def _as(settings: Settings, identity: str) -> NatsClient:
    return await connect(settings, f"test-{identity}", identity=identity)


async def _stored(admin: NatsClient, stream: str) -> int:
    info = await admin.jetstream().stream_info(stream)
    return int(info.state.messages)


def _plan(goal_id: str) -> PlanCreated:
    stamp = Stamp("executor@forged", goal_id, datetime.now(UTC), None, goal_id)
    return PlanCreated(
        **stamp.envelope("plan_created", 1), iteration=1, strategy="explicit", tasks=()
    )


@pytest.fixture
async def admin(secure_settings: Settings) -> AsyncIterator[NatsClient]:
    nc = await _as(secure_settings, ADMIN)
    await provision(nc.jetstream(), secure_settings)
    yield nc
    await nc.close()


async def test_the_platform_runs_a_goal_with_per_service_identities(
    secure_settings: Settings, admin: NatsClient
) -> None:
    # The sleep waits as a durable timer: the executor may arm it and take its wake-up.
    platform = InProcessPlatform(replace(secure_settings, timer_threshold_s=0.5))
    platform.start()
    client_nc = await _as(secure_settings, "client")
    try:
        client = AgoraClient(client_nc)
        submitted = await client.submit(
            {
                "text": "compute then echo",
                "steps": [
                    {"tool": "calculator", "args": {"expression": "17*23"}},
                    {"tool": "sleep", "args": {"seconds": 1}},
                    {"tool": "echo", "args": {"text": "= {{steps.s1.output}}"}},
                ],
                "expect": {"contains": "391"},
            }
        )
        events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)
        assert type(events[-1]).__name__ == "GoalCompleted"
        assert "TimerFired" in {type(e).__name__ for e in events}
        await projector_caught_up(client_nc, timeout_s=30)
        reply = await ask(
            client_nc, f"SELECT status FROM goals WHERE goal_id = '{submitted.goal_id}'"
        )
        assert reply.rows == [["completed"]]
    finally:
        await client_nc.close()
        await platform.stop()


async def test_the_executor_cannot_publish_a_plan(
    secure_settings: Settings, admin: NatsClient
) -> None:
    executor = await _as(secure_settings, "executor")
    try:
        before = await _stored(admin, EVENTS_STREAM)
        publish = EventPublisher(executor, timeout_s=REFUSED_WITHIN_S)
        with pytest.raises(AgoraError, match="did not acknowledge"):
            await publish([_plan("g-forged")])
        assert await _stored(admin, EVENTS_STREAM) == before
        # The same connection may still publish what the executor owns.
        assert executor.is_connected
    finally:
        await executor.close()


async def test_the_client_may_submit_goals_but_not_write_events(
    secure_settings: Settings, admin: NatsClient
) -> None:
    client_nc = await _as(secure_settings, "client")
    try:
        await AgoraClient(client_nc).submit({"text": "echo hi"})
        assert await _stored(admin, INTAKE_STREAM) == 1
        with pytest.raises(AgoraError):
            await EventPublisher(client_nc, timeout_s=REFUSED_WITHIN_S)([_plan("g-client")])
        assert await _stored(admin, EVENTS_STREAM) == 0
        # Nobody outside may arm a timer or wake a waiting task early.
        forged = Wakeup(goal_id="g-client", timer_id="t-1").encode()
        for subject in (INTAKE_WAKEUP, timer_subject("t-1")):
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await client_nc.jetstream().publish(subject, forged, timeout=REFUSED_WITHIN_S)
        assert await _stored(admin, INTAKE_STREAM) == 1
    finally:
        await client_nc.close()


@pytest.mark.parametrize("identity", ["executor", "client"])
async def test_only_admin_may_purge_delete_or_change_streams(
    secure_settings: Settings, admin: NatsClient, identity: str
) -> None:
    await AgoraClient(admin).submit({"text": "keep me"})
    await provision(admin.jetstream(), secure_settings, [(consumers_for("planner")[1], 8)])
    nc = await _as(secure_settings, identity)
    # The JetStream API requests nats-py's purge_stream, delete_stream, delete_msg,
    # add_stream and delete_consumer send, each with a short timeout (a refusal is silence).
    refused = [
        (f"$JS.API.STREAM.PURGE.{INTAKE_STREAM}", {}),
        (f"$JS.API.STREAM.DELETE.{INTAKE_STREAM}", {}),
        (f"$JS.API.STREAM.MSG.DELETE.{INTAKE_STREAM}", {"seq": 1}),
        ("$JS.API.STREAM.CREATE.EVIL", {"name": "EVIL", "subjects": ["evil.>"]}),
        (f"$JS.API.STREAM.UPDATE.{INTAKE_STREAM}", {"name": INTAKE_STREAM, "subjects": ["x"]}),
        # Nor touch a service's durable consumer: delete it.
        (f"$JS.API.CONSUMER.DELETE.{EVENTS_STREAM}.planner", {}),
    ]
    try:
        for subject, body in refused:
            with pytest.raises(nats.errors.TimeoutError):
                await nc.request(subject, json.dumps(body).encode(), timeout=REFUSED_WITHIN_S)
        assert await _stored(admin, INTAKE_STREAM) == 1
        assert (await admin.jetstream().consumer_info(EVENTS_STREAM, "planner")).name == "planner"
        assert (await admin.jetstream().stream_info(INTAKE_STREAM)).config.subjects == [
            "agora.intake.>"
        ]
    finally:
        await nc.close()
    # admin may (the supervisor provisions streams; an operator may purge)
    await admin.jetstream().purge_stream(INTAKE_STREAM)
    assert await _stored(admin, INTAKE_STREAM) == 0


async def test_a_reader_cannot_change_a_durable_consumer(
    secure_settings: Settings, admin: NatsClient
) -> None:
    """Creating a consumer that names a service's durable must not reach the durable."""
    planner = consumers_for("planner")[1]
    await provision(admin.jetstream(), secure_settings, [(planner, 8)])
    executor = await _as(secure_settings, "executor")
    try:
        js = executor.jetstream(timeout=REFUSED_WITHIN_S)
        takeover = {"filter_subject": "agora.events.>", "ack_policy": "explicit"}
        for config in (
            ConsumerConfig(durable_name="planner", **takeover),
            ConsumerConfig(name="planner", **takeover),
        ):
            with pytest.raises(nats.errors.TimeoutError):
                await js.add_consumer(EVENTS_STREAM, config)
        # The unnamed create, whose body may carry any name, is refused altogether.
        body = {"stream_name": EVENTS_STREAM, "config": {"name": "planner", **takeover}}
        with pytest.raises(nats.errors.TimeoutError):
            await executor.request(
                f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}",
                json.dumps(body).encode(),
                timeout=REFUSED_WITHIN_S,
            )
    finally:
        await executor.close()
    info = await admin.jetstream().consumer_info(EVENTS_STREAM, "planner")
    assert sorted(info.config.filter_subjects or [info.config.filter_subject]) == sorted(
        planner.filter_subjects
    )


async def _refused(url: str, **options: str) -> str:
    """The server's refusal of a plain nats-py connection with ``options``."""
    nc = NatsClient()
    try:
        with pytest.raises(nats.errors.Error) as refused:
            await nc.connect(url, allow_reconnect=False, **options)  # type: ignore[arg-type]
    finally:
        await nc.close()  # nats-py leaves the socket of a refused connect open otherwise
    return str(refused.value)


async def test_anonymous_and_wrong_passwords_are_refused(secure_settings: Settings) -> None:
    assert secure_settings.nats_urls is not None
    url = secure_settings.nats_urls[0]
    assert "Authorization Violation" in await _refused(url)
    executor = load_credentials(credentials_path(secure_settings.nats_dir, "executor"))
    wrong = await _refused(url, user=executor.user, password=executor.password + "x")
    assert "Authorization Violation" in wrong
    # agora's own connect says so at once, rather than retrying forever.
    async with asyncio.timeout(10):
        with pytest.raises(ConfigurationError, match="refused the credentials"):
            await connect(replace(secure_settings, nats_user="admin", nats_password="guess"), "t")


def test_credentials_are_private_files(secure_settings: Settings) -> None:
    directory = credentials_path(secure_settings.nats_dir, "admin").parent
    assert directory.stat().st_mode & 0o777 == 0o700
    for path in directory.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert (secure_settings.nats_dir / "nats-server.conf").stat().st_mode & 0o777 == 0o600


async def test_a_refused_publish_is_reported_not_silent(secure_settings: Settings) -> None:
    assert secure_settings.nats_urls is not None
    errors: list[str] = []
    reported = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))
        reported.set()

    creds = load_credentials(credentials_path(secure_settings.nats_dir, "executor"))
    executor = await nats.connect(
        secure_settings.nats_urls[0], user=creds.user, password=creds.password, error_cb=on_error
    )
    try:
        await executor.publish("agora.events.g-x.plan_created", b"{}")
        await asyncio.wait_for(reported.wait(), 5)
    finally:
        await executor.close()
    assert "permissions violation" in errors[0].lower()


async def test_the_projector_reads_over_its_own_socket_with_its_credentials(
    secure_settings: Settings, admin: NatsClient
) -> None:
    """The stream reader's fast path logs in as the projector (not the nats-py fallback)."""
    await AgoraClient(admin).submit({"text": "read me"})
    projector = await _as(secure_settings, "projector")
    reader = await StreamReader(projector, INTAKE_STREAM, "agora.intake.>", wire=True).open()
    try:
        batch = await reader.next_batch(wait=False)
        assert reader.uses_wire
        assert batch.seqs == [1]
    finally:
        await reader.close()
        await projector.close()


async def test_mcp_tools_work_with_per_service_identities(
    secure_settings: Settings, admin: NatsClient
) -> None:
    # The executor records listings, every planner replica follows them, a client lists them.
    time_server = {"command": sys.executable, "args": ["-m", "mcp_server_time"]}
    configured = replace(
        secure_settings, mcp_servers=json.dumps({"mcpServers": {"time": time_server}})
    )
    platform = InProcessPlatform(configured)
    platform.start()
    client_nc = await _as(secure_settings, "client")
    try:

        async def listed() -> bool:
            return any(listing.tools for listing in await read_listings(client_nc))

        await wait_until(listed, what="the time server's listing, read by the client")
        client = AgoraClient(client_nc)
        submitted = await client.submit(
            {
                "text": "the time in Lima",
                "steps": [{"tool": "time.get_current_time", "args": {"timezone": "America/Lima"}}],
                "allowed_tools": ["time.get_current_time"],
                "expect": {"contains": "America/Lima"},
            }
        )
        events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)
        assert type(events[-1]).__name__ == "GoalCompleted", events[-1]
    finally:
        await client_nc.close()
        await platform.stop()
