"""``agora up --cluster 3``: three embedded nats-server nodes, R3 streams, every service."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from events.catalog import GoalCompleted
from events.subjects import EVENTS_STREAM
from infra.bus.connection import connect
from infra.clients.goals import AgoraClient
from infra.platform.runner import SERVICES
from infra.platform.supervisor import Supervisor
from infra.settings import Settings
from tests.support import wait_until


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
async def test_up_with_a_cluster_runs_r3_streams_and_stops_every_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("AGORA_")]:
        monkeypatch.delenv(name)
    settings = replace(Settings(), data_dir=tmp_path, workspace=tmp_path / "ws", durability="os")
    supervisor = Supervisor(settings, cluster=3)
    await supervisor.start()
    assert supervisor.nats_cluster is not None
    node_pids = [node.pid for node in supervisor.nats_cluster.nodes]
    try:
        assert len(supervisor.url.split(",")) == 3
        await wait_until(_all_running(supervisor), timeout_s=30, what="every service to start")
        nc = await connect(supervisor.settings, "agora-e2e")
        try:
            info = await nc.jetstream().stream_info(EVENTS_STREAM)
            assert info.config.num_replicas == 3
            assert len(info.cluster.replicas or []) == 2
            client = AgoraClient(nc)
            submitted = await client.submit(
                {"text": "x", "steps": [{"tool": "echo", "args": {"text": "clustered"}}]}
            )
            events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)
            assert isinstance(events[-1], GoalCompleted)
        finally:
            await nc.close()
    finally:
        await supervisor.stop()
    assert not any(pid is not None and alive(pid) for pid in node_pids)
    assert not (tmp_path / "nats" / "server.json").exists()


def _all_running(supervisor: Supervisor) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return all(supervisor.pid_of(name) for name in SERVICES)

    return check


def test_up_help_offers_the_cluster_option() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "infra.cli", "up", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "--cluster" in shown.stdout
