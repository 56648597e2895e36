"""StreamReader against a real nats-server: order, completeness, restarts, both transports.

Every test uses a stream of its own (``WIRE_<n>``) so the agora streams stay untouched.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from infra.bus.reader import RawBatch, StreamReader
from infra.platform.embedded import EmbeddedNats

_names = itertools.count()
BIG = bytes(range(256)) * 3600  # ~900 KB, under the embedded server's 8 MB limit


def payload_for(i: int) -> bytes:
    """Every 7th is binary, every 11th carries protocol text, one is ~900 KB."""
    if i == 1500:
        return BIG
    if i % 11 == 0:
        return f"event {i}\r\nMSG agora.x 1 3\r\nabc\r\nHMSG y 1 2 2\r\n".encode()
    if i % 7 == 0:
        return bytes((i + k) % 256 for k in range(300))
    return b'{"n": %d}' % i


async def make_stream(nc: NatsClient, count: int, subjects: tuple[str, ...] = ("a",)) -> str:
    """A stream of ``count`` messages, the i-th (1-based) on subjects[i % len]."""
    name = f"WIRE_{next(_names)}"
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
    await publish(nc, name, range(1, count + 1), subjects)
    return name


async def publish(
    nc: NatsClient, name: str, numbers: range, subjects: tuple[str, ...] = ("a",)
) -> None:
    js = nc.jetstream()
    for start in range(0, len(numbers), 500):
        chunk = numbers[start : start + 500]
        acks = [
            await js.publish_async(
                f"{name}.{subjects[i % len(subjects)]}",
                payload_for(i),
                # half with a Nats-Msg-Id header (HMSG frames), half without (MSG frames)
                headers={"Nats-Msg-Id": f"{name}-{i}"} if i % 2 else None,
            )
            for i in chunk
        ]
        await asyncio.gather(*acks)


async def read_all(reader: StreamReader, *, until: int, wait: bool = False) -> RawBatch:
    """Everything up to stream sequence ``until``, batch by batch, checking each batch.

    ``wait``: linger for messages. A no_wait pull sent just after a publish was acknowledged
    may find a freshly created consumer not yet told of it (the server answers 404), so a
    reader recreated mid-test reads with ``wait``.
    """
    total = RawBatch()
    while not total.seqs or total.seqs[-1] < until:
        batch = await reader.next_batch(wait=wait)
        assert len(batch) <= reader.batch
        assert batch.seqs, f"the reader stopped at {total.seqs[-1:]} before {until}"
        total.extend(batch)
    return total


@pytest.mark.parametrize("wire", [True, False], ids=["wire", "nats-py"])
@pytest.mark.parametrize("batch", [1, 97, 5000])
async def test_every_message_arrives_once_in_order_with_exact_bytes(
    nc: NatsClient, wire: bool, batch: int
) -> None:
    count = 300 if batch == 1 else 3000
    name = await make_stream(nc, count)
    reader = await StreamReader(nc, name, f"{name}.>", batch=batch, wire=wire).open()
    try:
        assert reader.uses_wire is wire
        got = await read_all(reader, until=count)
        assert got.seqs == list(range(1, count + 1))
        assert got.payloads == [payload_for(i) for i in range(1, count + 1)]
        assert got.timestamps_ns == sorted(got.timestamps_ns)
        assert got.timestamps_ns[0] > 1_600_000_000 * 10**9
        assert got.pending == 0
        # The end of the stream: a prompt empty batch (404 with no_wait), not a timeout.
        started = time.monotonic()
        assert len(await reader.next_batch(wait=False)) == 0
        assert time.monotonic() - started < 2.0
    finally:
        await reader.close()


@pytest.mark.parametrize("wire", [True, False], ids=["wire", "nats-py"])
async def test_a_filter_and_a_start_sequence_select_the_messages(
    nc: NatsClient, wire: bool
) -> None:
    name = await make_stream(nc, 1200, subjects=("even", "odd"))
    reader = await StreamReader(
        nc, name, f"{name}.even", start_seq=601, batch=100, wire=wire
    ).open()
    try:
        got = await read_all(reader, until=1200)
        assert got.seqs == list(range(602, 1201, 2))
        assert got.payloads == [payload_for(i) for i in range(602, 1201, 2)]
    finally:
        await reader.close()


@pytest.mark.parametrize("wire", [True, False], ids=["wire", "nats-py"])
async def test_waiting_lingers_and_returns_what_arrives_meanwhile(
    nc: NatsClient, wire: bool
) -> None:
    name = await make_stream(nc, 3)
    reader = await StreamReader(nc, name, f"{name}.>", batch=50, linger_s=0.5, wire=wire).open()
    try:
        assert (await reader.next_batch(wait=True)).seqs == [1, 2, 3]
        started = time.monotonic()
        assert len(await reader.next_batch(wait=True)) == 0
        assert time.monotonic() - started >= 0.4  # it waited for new messages

        waiting = asyncio.ensure_future(reader.next_batch(wait=True))
        await publish(nc, name, range(4, 6))
        batch = await waiting
        assert batch.seqs == [4, 5]
        assert batch.payloads == [payload_for(4), payload_for(5)]
    finally:
        await reader.close()


async def test_a_waiting_read_gathers_without_messages_streaming_in_one_by_one(
    nc: NatsClient,
) -> None:
    # A caught-up reader asks for one message; once it has it, nothing is outstanding while
    # the batch gathers, so what is stored meanwhile waits at the server (pending, not
    # delivered) and arrives in one read: two wake-ups per batch, not one per event.
    name = await make_stream(nc, 2)
    linger_s = 2.0
    reader = await StreamReader(nc, name, f"{name}.>", batch=50, linger_s=linger_s).open()
    consumer = reader.consumer
    assert consumer is not None
    js = nc.jetstream()
    try:
        assert (await reader.next_batch(wait=True)).seqs == [1, 2]
        waiting = asyncio.ensure_future(reader.next_batch(wait=True))
        await until(lambda: _waiting_requests(js, name, consumer), 1)
        began = time.monotonic()
        await publish(nc, name, range(3, 4))
        await until(lambda: _delivered_and_waiting(js, name, consumer), (3, 0))
        await publish(nc, name, range(4, 7))
        gathering = await js.consumer_info(name, consumer)
        if time.monotonic() - began < linger_s:  # still gathering: nothing was handed over
            assert (gathering.num_pending, gathering.num_waiting) == (3, 0)
        batch = await waiting
        assert batch.seqs == [3, 4, 5, 6]
        assert batch.payloads == [payload_for(i) for i in range(3, 7)]
        assert batch.pending == 0
    finally:
        await reader.close()


async def _waiting_requests(js: JetStreamContext, stream: str, consumer: str) -> int:
    return int((await js.consumer_info(stream, consumer)).num_waiting or 0)


async def _delivered_and_waiting(
    js: JetStreamContext, stream: str, consumer: str
) -> tuple[int, int]:
    info = await js.consumer_info(stream, consumer)
    return int(info.delivered.stream_seq or 0), int(info.num_waiting or 0)


async def until(probe: Callable[[], Awaitable[object]], wanted: object) -> None:
    """Until ``probe()`` answers ``wanted`` (a deadline of 10 s)."""
    deadline = time.monotonic() + 10.0
    while (got := await probe()) != wanted:
        assert time.monotonic() < deadline, f"still {got!r}, not {wanted!r}"
        await asyncio.sleep(0.01)  # polling the consumer's state, with a deadline


async def test_a_server_restart_mid_read_continues_at_the_next_sequence(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    # The restart reuses the port while the old connections sit in TIME_WAIT.
    count = 4000
    name = await make_stream(nc, count)
    reader = await StreamReader(nc, name, f"{name}.>", batch=500).open()
    try:
        first = await reader.next_batch(wait=False)
        assert first.seqs == list(range(1, 501))
        nats_server.stop()
        nats_server.start()
        rest = await read_all(reader, until=count)
        assert first.seqs + rest.seqs == list(range(1, count + 1))
        assert rest.payloads == [payload_for(i) for i in range(501, count + 1)]
        assert reader.uses_wire
    finally:
        await reader.close()


async def test_a_deleted_consumer_409_is_recreated_at_the_next_sequence(nc: NatsClient) -> None:
    name = await make_stream(nc, 10)
    reader = await StreamReader(nc, name, f"{name}.>", batch=100, linger_s=1.0).open()
    try:
        assert (await reader.next_batch(wait=False)).seqs == list(range(1, 11))
        waiting = asyncio.ensure_future(reader.next_batch(wait=True))
        consumer = reader._consumer  # the test removes it under the reader
        assert consumer is not None
        await nc.jetstream().delete_consumer(name, consumer)
        assert len(await waiting) == 0
        await publish(nc, name, range(11, 21))
        got = await read_all(reader, until=20, wait=True)
        assert got.seqs == list(range(11, 21))
        assert reader._consumer != consumer
    finally:
        await reader.close()


async def test_a_client_with_url_credentials_falls_back_to_nats_py(
    nats_server: EmbeddedNats,
) -> None:
    # The embedded server has no auth, so it accepts (and ignores) these credentials; the reader
    # must still not attempt its own connection: it sends only a user and password given as
    # options (agora's identities, see test_nats_permissions.py), not ones in the URL.
    host_port = nats_server.url.removeprefix("nats://")
    client = await nats.connect(f"nats://reader:secret@{host_port}")
    try:
        name = await make_stream(client, 50)
        reader = await StreamReader(client, name, f"{name}.>", batch=20).open()
        try:
            assert not reader.uses_wire
            assert (await read_all(reader, until=50)).seqs == list(range(1, 51))
        finally:
            await reader.close()
    finally:
        await client.close()
