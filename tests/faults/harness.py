"""What every fault scenario needs: a workload, services as OS processes, waiting for outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient

from events.subjects import EVENTS_STREAM
from infra.clients.goals import AgoraClient
from infra.platform.embedded import EmbeddedNats
from infra.platform.runner import SERVICES
from infra.settings import Settings
from tests.support import wait_until

__all__ = [
    "CALLS_DIR",
    "ServiceProcesses",
    "count_finished",
    "fault_settings",
    "goal_command",
    "kill_everything_and_restart",
    "submit_all",
    "wait_all_finished",
]

CALLS_DIR = "calls"


def fault_settings(tmp_path: Path, *urls: str, **changes: Any) -> Settings:
    """Short ack wait and drain, so a fault is noticed and recovered from within seconds."""
    base = replace(
        Settings(),
        nats_urls=urls,
        data_dir=tmp_path,
        workspace=tmp_path / "workspace",
        ack_wait_s=2.0,
        drain_timeout_s=2.0,
        executor_concurrency=256,
        query_timeout_s=2.0,
    )
    return replace(base, **changes)


def goal_command(prefix: str, n: int) -> dict[str, Any]:
    """Three dependent steps; the second has a side effect that counts its own runs."""
    goal_id = f"{prefix}-{n}"
    return {
        "command_id": f"cmd-{goal_id}",
        "goal_id": goal_id,
        "text": f"fault goal {n}",
        "steps": [
            {"tool": "calculator", "args": {"expression": f"{n}*2"}},
            {
                "tool": "append_line",
                "args": {"path": f"{CALLS_DIR}/{goal_id}.s2.txt", "line": "ran"},
            },
            {"tool": "echo", "args": {"text": "done {{steps.s1.output}}"}},
        ],
        "expect": {"equals": f"done {n * 2}"},
    }


async def submit_all(client: AgoraClient, commands: list[dict[str, Any]]) -> list[str]:
    submitted = await asyncio.gather(*(client.submit(c) for c in commands))
    return [s.goal_id for s in submitted]


async def count_finished(nc: NatsClient) -> int:
    """Goals with a terminal event, from the stream's subject index (cheap)."""
    js = nc.jetstream()
    total = 0
    for kind in ("goal_completed", "goal_failed"):
        info = await js.stream_info(EVENTS_STREAM, subjects_filter=f"agora.events.*.{kind}")
        total += len(info.state.subjects or {})
    return total


async def wait_all_finished(nc: NatsClient, n: int, *, timeout_s: float) -> None:
    async def finished() -> bool:
        # While the server is down or electing a leader, the answer is "not yet".
        try:
            return await count_finished(nc) >= n
        except Exception:
            return False

    await wait_until(finished, timeout_s=timeout_s, what=f"{n} goals to finish")


@dataclass
class ServiceProcesses:
    """agora services as OS processes (``agora service NAME``), to kill, pause and restart."""

    settings: Settings
    env: Mapping[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_dir: Path | None = None

    def start(self, name: str, replica: str = "") -> subprocess.Popen[bytes]:
        key = f"{name}{replica}"
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AGORA_")},
            **self.settings.to_env(),
            **self.env,
        }
        log_path = Path(os.devnull)
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"{key}.log"
        with log_path.open("ab") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", "service", name],
                env=environment,
                stdout=log,
                stderr=log,
            )
        self.procs[key] = proc
        return proc

    def signal(self, key: str, sig: signal.Signals) -> None:
        self.procs[key].send_signal(sig)

    def kill(self, key: str) -> None:
        proc = self.procs[key]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self, timeout_s: float = 15.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
                    proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def kill_everything_and_restart(services: ServiceProcesses, server: EmbeddedNats) -> None:
    """Every agora process and nats-server, SIGKILLed; then all of it started again."""
    for key in list(services.procs):
        services.kill(key)
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    server.stop()
    server.start()
    for name in SERVICES:
        services.start(name)
