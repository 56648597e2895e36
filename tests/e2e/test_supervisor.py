"""``agora up`` as the Supervisor runs it: its own nats-server, each service its own process."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from events.catalog import GoalCompleted
from infra.bus.connection import connect
from infra.clients.goals import AgoraClient
from infra.platform.embedded import DISCOVERY_FILE
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
        settings, nats_urls=None, data_dir=tmp_path / "supervised", durability="os"
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
