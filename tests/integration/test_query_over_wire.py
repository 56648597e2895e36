"""`agora query` asks over the lean wire client: the same answers, refusals and errors as a
nats-py connection gets, against the real projector."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient

from infra.bus.connection import connect_wire
from infra.bus.wire import WireClient
from infra.clients.query import QueryFailedError, ask, projector_caught_up
from infra.settings import Settings
from tests.conftest import InProcessPlatform


@pytest.fixture
async def wire(settings: Settings) -> AsyncIterator[WireClient]:
    client = await connect_wire(settings, "test-query-wire")
    yield client
    await client.close()


async def test_no_projector_is_said_as_over_nats_py(nc: NatsClient, wire: WireClient) -> None:
    with pytest.raises(QueryFailedError) as over_nats_py:
        await ask(nc, "SELECT 1", timeout_s=5)
    with pytest.raises(QueryFailedError) as over_wire:
        await ask(wire, "SELECT 1", timeout_s=5)
    assert "no projector answers on agora.query" in str(over_wire.value)
    assert str(over_wire.value) == str(over_nats_py.value)


async def test_answers_and_refusals_are_those_nats_py_gets(
    nc: NatsClient, wire: WireClient, platform: InProcessPlatform
) -> None:
    await projector_caught_up(nc)
    sql = "SELECT ? AS word, 6 * 7 AS n, 'x' || repeat('y', 3) AS s"
    over_nats_py = await ask(nc, sql, params=["hi"], max_rows=1)
    over_wire = await ask(wire, sql, params=["hi"], max_rows=1)
    assert (over_wire.columns, over_wire.rows) == (over_nats_py.columns, over_nats_py.rows)
    assert over_wire.rows == [["hi", 42, "xyyy"]]
    cut = await ask(wire, "SELECT * FROM range(3)", max_rows=2)
    assert (len(cut.rows), cut.truncated) == (2, True)
    with pytest.raises(QueryFailedError, match="DROP statements are not allowed"):
        await ask(wire, "DROP TABLE goals")
