"""The services' lean wire client against a real nats-server: auth, reconnect, cluster URLs.

A scripted peer (a few lines of asyncio speaking just the handshake) plays the cluster member
that announces another server and then fails in one of the ways real ones do; the client must
end up on the real server with its subscriptions back. Server restarts use the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from events.catalog import PlanCreated
from events.model import Stamp
from events.subjects import EVENTS_STREAM
from infra.bus.connection import connect, open_hot_path
from infra.bus.consume import ConsumeLoop, Delivery
from infra.bus.core import Inbound
from infra.bus.publisher import EventPublisher
from infra.bus.pull import PullRequests
from infra.bus.streams import ConsumerSpec, provision
from infra.bus.wire import WireBackpressureError, WireClient
from infra.platform.auth import ADMIN
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings
from tests.support import wait_until

Failure = Literal["closes", "goes_silent", "sends_garbage"]


async def publish_once(js: JetStreamContext, subject: str, msg_id: str) -> int:
    """Store one message (once, by its id), retrying while JetStream is still starting up."""
    for _ in range(50):
        with contextlib.suppress(nats.errors.TimeoutError, nats.errors.NoRespondersError):
            ack = await js.publish(subject, b"{}", timeout=0.5, headers={"Nats-Msg-Id": msg_id})
            return int(ack.seq)
    raise AssertionError(f"JetStream stored nothing on {subject} in 50 tries")


@contextlib.asynccontextmanager
async def scripted_member(announces: str, failure: Failure) -> AsyncIterator[str]:
    """A peer that accepts one client, announces ``announces`` in a later INFO, then fails."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.close()  # one client only: a reconnect must go to the announced server
        info = {"server_id": "scripted", "headers": True}
        writer.write(b"INFO " + json.dumps(info).encode() + b"\r\n")
        await reader.readline()  # CONNECT
        await reader.readline()  # PING
        writer.write(b"PONG\r\n")
        await reader.readline()  # the client's SUB
        # The cluster grew: a later INFO announces the new member.
        info["connect_urls"] = [announces]
        writer.write(b"INFO " + json.dumps(info).encode() + b"\r\n")
        await writer.drain()
        if failure == "sends_garbage":
            writer.write(b"THIS IS NOT NATS\r\n")
        if failure == "goes_silent":  # reads on, answers no PING
            while await reader.read(4096):
                pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.close()


@pytest.mark.parametrize("failure", ["closes", "goes_silent", "sends_garbage"])
async def test_a_failing_member_hands_the_client_to_the_server_it_announced(
    nats_server: EmbeddedNats, nc: NatsClient, failure: Failure
) -> None:
    real = nats_server.url.removeprefix("nats://")
    received: list[Inbound] = []
    async with scripted_member(real, failure) as url:
        client = WireClient([url], "test-wire", ping_interval_s=0.2, max_pings_out=2)
        await client.connect()
        await client.subscribe("wire.test.>", received.append)

        async def on_the_real_server() -> bool:
            return client.connected_address == real

        await wait_until(on_the_real_server, timeout_s=10, what="a reconnect to the announced")
    assert real in client.known_servers
    await client.flush()  # the resubscription has reached the server

    await nc.publish("wire.test.1", b"after the member failed")
    await nc.flush()

    async def arrived() -> bool:
        return bool(received)

    await wait_until(arrived, timeout_s=5, what="a message on the resubscribed subject")
    assert (received[0].subject, received[0].data) == ("wire.test.1", b"after the member failed")
    await client.close()


class Cable:
    """A TCP relay to the real server that the test can unplug and plug back in (same port),
    so one client loses its connection while another, connected directly, never does."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def plug_in(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def unplug(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_writes_wait_while_disconnected_up_to_a_bound_then_fail_at_once(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    received: list[bytes] = []

    async def on_message(msg: Msg) -> None:
        received.append(msg.data)

    await nc.subscribe("wire.buffered", cb=on_message)
    await nc.flush()
    cable = Cable(nats_server.port)
    await cable.plug_in()
    client = WireClient(
        [f"nats://127.0.0.1:{cable.port}"], "test-buffer", max_buffered_bytes=64 * 1024
    )
    await client.connect()
    await cable.unplug()

    async def disconnected() -> bool:
        return not client.is_connected

    await wait_until(disconnected, timeout_s=5, what="the client to see the cable gone")
    payloads = [b"%04d" % n + b"." * 996 for n in range(1000)]
    accepted: list[bytes] = []
    refused: WireBackpressureError | None = None
    for payload in payloads:
        try:
            await client.publish("wire.buffered", payload)
        except WireBackpressureError as exc:
            refused = exc
            break
        accepted.append(payload)
    assert refused is not None
    assert "disconnected" in str(refused)
    assert 0 < len(accepted) < 1000

    await cable.plug_in()

    async def all_delivered() -> bool:
        return len(received) >= len(accepted)

    await wait_until(all_delivered, timeout_s=15, what="the buffered messages after reconnect")
    assert received == accepted  # every accepted one, in order, none of the refused
    await client.close()
    await cable.unplug()


async def test_a_server_that_stops_reading_gets_a_bounded_buffer_not_all_our_memory() -> None:
    """Slow-consumer safety on our side: once the socket and the transport are full, writes
    wait in the bounded buffer, then a publish fails at once; the connection stays up."""
    done = asyncio.Event()

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"server_id":"stalled","headers":true}\r\n')
        await reader.readline()  # CONNECT
        await reader.readline()  # PING
        writer.write(b"PONG\r\n")
        await done.wait()  # and read nothing more
        writer.close()

    server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = WireClient([f"nats://127.0.0.1:{port}"], "test-stalled", max_buffered_bytes=256 * 1024)
    await client.connect()
    payload = b"." * 64 * 1024
    written = 0
    refused: WireBackpressureError | None = None
    while refused is None and written < 512 * 1024 * 1024:
        try:
            await client.publish("wire.stalled", payload)
        except WireBackpressureError as exc:
            refused = exc
        written += len(payload)
        await asyncio.sleep(0)  # let the loop write, so the kernel's buffers fill
    assert refused is not None, "512 MiB went out to a peer that reads nothing"
    assert "reads slowly" in str(refused)
    assert client.is_connected
    done.set()
    server.close()
    await client.close(timeout_s=0.1)


async def test_token_auth_is_accepted_and_a_wrong_password_refused(tmp_path: Path) -> None:
    token = "s3cret-token"
    with EmbeddedNats(
        tmp_path / "token", durability="os", extra_config=f'authorization {{ token: "{token}" }}\n'
    ) as server:
        address = server.url.removeprefix("nats://")
        client = await WireClient([f"nats://{token}@{address}"], "test-token").connect()
        await client.flush()
        await client.close()
        with pytest.raises(ConnectionError, match="Authorization Violation"):
            await WireClient([server.url], "test-token", token="wrong").connect()
    users = 'authorization { users: [{user: "svc", password: "right"}] }\n'
    with EmbeddedNats(tmp_path / "users", durability="os", extra_config=users) as server:
        client = await WireClient([server.url], "test-user", user="svc", password="right").connect()
        await client.flush()
        await client.close()
        with pytest.raises(ConnectionError, match="Authorization Violation"):
            await WireClient([server.url], "test-user", user="svc", password="wrong").connect()


async def test_pull_requests_lost_in_a_server_restart_are_renewed_at_once(
    nats_server: EmbeddedNats, settings: Settings, nc: NatsClient
) -> None:
    """Not after their expiry (here 30 s): the reconnect itself says they are gone."""
    js = nc.jetstream()
    spec = ConsumerSpec(EVENTS_STREAM, "renewed", ("agora.events.*.renewed",), "test renewed")
    await provision(js, settings, [(spec, 64)])
    core = await open_hot_path(settings, nc, "test-renewed")
    assert isinstance(core, WireClient)
    delivered: list[Inbound] = []
    told = asyncio.Event()
    pulls = PullRequests(
        core, spec.stream, spec.durable, delivered.append, expires_s=30.0, ended=told.set
    )
    await pulls.open()
    await pulls.top_up(16)
    nats_server.stop()
    nats_server.start()

    async def was_told() -> bool:
        return told.is_set()

    await wait_until(was_told, timeout_s=15, what="the reconnect reported")
    await pulls.top_up(16)  # what the consume loop does when told
    await publish_once(js, "agora.events.g-1.renewed", "renewed-1")

    async def arrived() -> bool:
        return bool(delivered)

    await wait_until(arrived, timeout_s=10, what="a delivery on the renewed request")
    await pulls.close()
    await core.close()


async def test_the_consume_loop_over_the_wire_client_survives_a_server_restart(
    nats_server: EmbeddedNats, settings: Settings, nc: NatsClient
) -> None:
    js = nc.jetstream()
    spec = ConsumerSpec(EVENTS_STREAM, "wired", ("agora.events.*.wired",), "test wired")
    await provision(js, settings, [(spec, 64)])
    core = await open_hot_path(settings, nc, "test-hot-path")
    assert isinstance(core, WireClient)
    handled: Counter[int] = Counter()

    async def handler(delivery: Delivery) -> None:
        handled[delivery.stream_seq] += 1

    async def publish(goals: range) -> list[int]:
        return [await publish_once(js, f"agora.events.g-{n}.wired", f"m-{n}") for n in goals]

    async def settled() -> bool:
        info = await js.consumer_info(spec.stream, spec.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0

    loop = ConsumeLoop(nc=nc, core=core, spec=spec, handler=handler, pull_expires_s=0.5)
    stop = asyncio.Event()
    running = asyncio.ensure_future(loop.run(stop))
    before = await publish(range(20))
    await wait_until(settled, what="the first messages acknowledged")

    nats_server.stop()
    nats_server.start()

    async def both_back() -> bool:
        return core.is_connected and nc.is_connected

    await wait_until(both_back, timeout_s=15, what="both connections back")
    after = await publish(range(20, 40))
    await wait_until(settled, timeout_s=20, what="the later messages acknowledged")
    stop.set()
    await asyncio.wait_for(running, 10)
    await core.close()

    assert set(handled) == set(before + after)
    assert all(handled[seq] == 1 for seq in before)  # acknowledged before: never redelivered
    assert core.reconnects == 1


async def test_a_service_identity_publishes_over_the_wire_client(secure_settings: Settings) -> None:
    """Under agora's permission table: its user and password, replies on its inbox prefix."""
    admin = await connect(secure_settings, "test-admin", identity=ADMIN)
    await provision(admin.jetstream(), secure_settings)
    await admin.close()
    planner = await connect(secure_settings, "test-planner", identity="planner")
    core = await open_hot_path(secure_settings, planner, "test-planner/hot", identity="planner")
    try:
        assert isinstance(core, WireClient)
        goal = "g-wired"
        stamp = Stamp("planner@test", goal, datetime.now(UTC), None, goal)
        plan = PlanCreated(
            **stamp.envelope("plan_created", 1), iteration=1, strategy="explicit", tasks=()
        )
        [ack] = await EventPublisher(core, timeout_s=5)([plan])
        assert ack.stream == EVENTS_STREAM
        assert not ack.duplicate
        [again] = await EventPublisher(core, timeout_s=5)([plan])
        assert (again.seq, again.duplicate) == (ack.seq, True)
    finally:
        await core.close()
        await planner.close()
