"""``agora up`` as the Supervisor runs it: its own nats-server, each service its own process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted
from events.errors import ConfigurationError
from infra.bus.connection import connect
from infra.clients.goals import AgoraClient
from infra.clients.query import QueryFailedError, ask
from infra.platform.children import Leftover, find_leftovers
from infra.platform.embedded import DISCOVERY_FILE, EmbeddedNats
from infra.platform.runner import SERVICES
from infra.platform.supervisor import Supervisor
from infra.settings import Settings
from tests.support import types_of, wait_until


def goal(n: int) -> Mapping[str, Any]:
    # `expect` makes the goal go through the evaluator, the service this test kills.
    return {
        "text": f"compute {n}*3",
        "steps": [{"tool": "calculator", "args": {"expression": f"{n}*3"}}],
        "expect": {"contains": str(n * 3)},
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def complete(client: AgoraClient, n: int) -> None:
    submitted = await client.submit(goal(n))
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)
    assert isinstance(events[-1], GoalCompleted), types_of(events)
    assert "evaluation_completed" in types_of(events)


# 3.5-4.5 s alone, 6-8 s on a busy 2-core machine: five processes start, one restarts.
@pytest.mark.slow
async def test_supervisor_restarts_a_killed_service_and_stops_everything_it_started(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Children inherit the environment: nothing from the developer's shell may leak into them.
    for name in [name for name in os.environ if name.startswith("AGORA_")]:
        monkeypatch.delenv(name)
    # A data dir of its own: the `settings` fixture's server already runs under tmp_path/nats.
    supervised = replace(
        settings,
        nats_urls=None,
        data_dir=tmp_path / "supervised",
        durability="os",
        nats_port=0,  # not 4222: whatever else runs on the machine may hold it
    )
    supervisor = Supervisor(supervised)
    await supervisor.start()
    spawned: set[int] = set()
    server_pid = supervisor.server.pid if supervisor.server else None
    try:
        assert server_pid is not None, "no embedded server was started"

        async def every_service_running() -> bool:
            return all(supervisor.pid_of(name) for name in SERVICES)

        await wait_until(every_service_running, timeout_s=20, what="every service to start")
        before = {name: supervisor.pid_of(name) for name in SERVICES}
        spawned.update(pid for pid in before.values() if pid)

        nc = await connect(replace(supervised, nats_urls=(supervisor.url,)), "agora-e2e")
        try:
            client = AgoraClient(nc)
            await complete(client, 1)

            killed = before["evaluator"]
            assert killed is not None
            os.kill(killed, signal.SIGKILL)

            async def evaluator_replaced() -> bool:
                pid = supervisor.pid_of("evaluator")
                return pid is not None and pid != killed

            await wait_until(evaluator_replaced, timeout_s=10, what="a new evaluator process")
            after = {name: supervisor.pid_of(name) for name in SERVICES}
            spawned.update(pid for pid in after.values() if pid)
            assert {n: p for n, p in after.items() if n != "evaluator"} == {
                n: p for n, p in before.items() if n != "evaluator"
            }, "only the killed service may be restarted"

            await complete(client, 2)
        finally:
            await nc.close()
    finally:
        await supervisor.stop()

    assert all(supervisor.pid_of(name) is None for name in SERVICES)
    assert not [pid for pid in spawned if alive(pid)], "a service process outlived stop()"
    assert not alive(server_pid)
    assert not (supervised.nats_dir / DISCOVERY_FILE).exists()


def _children_env(data_dir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGORA_")}
    # agora up's dashboard on a free port, never the well-known one.
    env.update(
        AGORA_DATA_DIR=str(data_dir),
        AGORA_NATS_PORT="0",
        AGORA_UI_PORT="0",
        AGORA_DURABILITY="os",
    )
    return env


def _kill_all(leftovers: list[Leftover]) -> None:
    for left in leftovers:  # a failing test must not leave them for the next one
        with contextlib.suppress(ProcessLookupError):
            os.kill(left.pid, signal.SIGKILL)


async def _answers(nc: NatsClient) -> bool:
    try:
        return (await ask(nc, "SELECT 1", timeout_s=2)).rows == [[1]]
    except QueryFailedError:
        return False


@pytest.mark.slow
async def test_the_embedded_server_is_restarted_when_it_dies(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("AGORA_")]:
        monkeypatch.delenv(name)
    supervised = replace(
        settings,
        nats_urls=None,
        data_dir=tmp_path / "supervised",
        durability="os",
        nats_port=0,  # not 4222: whatever else runs on the machine may hold it
    )
    supervisor = Supervisor(supervised, services=("projector",))
    await supervisor.start()
    try:
        assert supervisor.server is not None
        first = supervisor.server.pid
        assert first is not None
        client = replace(supervised, nats_urls=(supervisor.url,))
        nc = await connect(client, "agora-e2e")
        try:
            await wait_until(lambda: _answers(nc), timeout_s=20, what="the projector")
            os.kill(first, signal.SIGKILL)

            async def replaced() -> bool:
                server = supervisor.server
                return server is not None and server.running() and server.pid != first

            await wait_until(replaced, timeout_s=10, what="a new nats-server")
            # Same port, same store: the client and the projector reconnect by themselves.
            await wait_until(lambda: _answers(nc), timeout_s=20, what="queries after restart")
        finally:
            await nc.close()
    finally:
        await supervisor.stop()
    assert not alive(first)


@pytest.mark.slow
async def test_agora_up_killed_takes_every_child_with_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "up"
    up = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "infra.cli", "up"),
        env=_children_env(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nats_dir = data_dir / "nats"
    try:

        async def everything_running() -> bool:
            found = {left.what for left in find_leftovers(data_dir, nats_dir)}
            return found >= {"nats-server", *SERVICES}

        await wait_until(everything_running, timeout_s=60, what="agora up to start")
        children = find_leftovers(data_dir, nats_dir)
        up.kill()
        await up.wait()

        async def all_gone() -> bool:
            return not [left for left in children if alive(left.pid)]

        try:
            await wait_until(all_gone, timeout_s=20, what="the children to die with agora up")
        finally:
            _kill_all(find_leftovers(data_dir, nats_dir))
    finally:
        if up.returncode is None:
            up.kill()
            await up.wait()


async def test_a_restart_names_the_leftovers_of_an_earlier_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("AGORA_")]:
        monkeypatch.delenv(name)
    supervised = replace(Settings(), data_dir=tmp_path / "earlier", durability="os", nats_port=0)
    # An earlier run's server, orphaned: nothing supervises it any more.
    with EmbeddedNats(supervised.nats_dir, durability="os"):
        orphan = find_leftovers(supervised.data_dir, supervised.nats_dir)
        assert [left.what for left in orphan] == ["nats-server"]
        with pytest.raises(ConfigurationError) as refused:
            await Supervisor(supervised).start()
        message = str(refused.value)
        assert f"nats-server (pid {orphan[0].pid})" in message
        assert f"kill {orphan[0].pid}" in message
