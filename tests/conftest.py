"""Fixtures shared by integration and e2e tests: a real nats-server per test, real services."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient

from infra.bus.connection import connect
from infra.bus.core import CoreBus
from infra.bus.publisher import EventPublisher
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.platform.auth import prepare_embedded_security
from infra.platform.embedded import EmbeddedNats
from infra.platform.runner import SERVICES, run_service
from infra.settings import Settings
from tests.llm_servers import ScriptedLlmServer

# Services the tests start as processes (agora up, the supervisor) stop as soon as their
# short pull requests end, too (the settings fixture does the same for in-process ones).
os.environ.setdefault("AGORA_PULL_EXPIRES_S", "0.5")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    # "os" durability: these tests are about protocol semantics, not power loss.
    with EmbeddedNats(tmp_path / "nats", durability="os") as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, nats_server: EmbeddedNats) -> Settings:
    return replace(
        Settings(),
        nats_urls=(nats_server.url,),
        data_dir=tmp_path,
        workspace=tmp_path / "workspace",
        ack_wait_s=3.0,
        drain_timeout_s=2.0,
        # Stopping waits for open pull requests to end: short ones keep teardowns short.
        pull_expires_s=0.5,
        concurrency=64,
        executor_concurrency=256,
        query_timeout_s=2.0,
    )


@pytest.fixture
async def nc(settings: Settings) -> AsyncIterator[NatsClient]:
    client = await connect(settings, "agora-test")
    await provision(client.jetstream(), settings)
    yield client
    await client.close()


@pytest.fixture
async def client(nc: NatsClient) -> AgoraClient:
    return AgoraClient(nc)


class InProcessPlatform:
    """The four services on this event loop (fast); each still talks only through NATS."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stops: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(
        self,
        *names: str,
        settings: Settings | None = None,
        publisher: Callable[[CoreBus], EventPublisher] = EventPublisher,
    ) -> None:
        for name in names or SERVICES:
            stop = self._stops[name] = asyncio.Event()
            self._tasks[name] = asyncio.ensure_future(
                run_service(name, settings or self.settings, stop, publisher=publisher)
            )

    async def stop(self, *names: str) -> None:
        for name in names or list(self._tasks):
            self._stops[name].set()
        for name in names or list(self._tasks):
            task = self._tasks.pop(name)
            await asyncio.wait_for(task, 15)


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[InProcessPlatform]:
    running = InProcessPlatform(settings)
    running.start()
    yield running
    await running.stop()


AGENTS = ("planner", "executor", "memory", "evaluator")


@pytest.fixture
async def agents(settings: Settings) -> AsyncIterator[InProcessPlatform]:
    """The four agent services without the projector (tests that run it as a process)."""
    running = InProcessPlatform(settings)
    running.start(*AGENTS)
    yield running
    await running.stop()


@pytest.fixture
def spawn_service(settings: Settings) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a service as its own OS process (for kill tests)."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, **env: str) -> subprocess.Popen[bytes]:
        assert settings.nats_urls is not None
        environment = {
            **os.environ,
            "AGORA_NATS_URL": settings.nats_urls[0],
            "AGORA_DATA_DIR": str(settings.data_dir),
            **settings.to_env(),
            "AGORA_DURABILITY": "os",
            **env,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "service", name], env=environment
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- scripted LLM providers (tests/llm_servers.py) ---------------------------------------


@pytest.fixture
def openai_server() -> Iterator[ScriptedLlmServer]:
    """An OpenAI-compatible server on loopback; script it with ``push(openai_reply(...))``."""
    with ScriptedLlmServer("openai") as server:
        yield server
    assert not server.script_errors, f"the test's script raised: {server.script_errors}"


@pytest.fixture
def anthropic_server() -> Iterator[ScriptedLlmServer]:
    """An Anthropic Messages server on loopback; script it with ``push(anthropic_reply(...))``."""
    with ScriptedLlmServer("anthropic") as server:
        yield server
    assert not server.script_errors, f"the test's script raised: {server.script_errors}"


@pytest.fixture
def secure_settings(tmp_path: Path) -> Iterator[Settings]:
    """A nats-server with agora's generated credentials and permission table (docs/security.md).

    Processes find their identity's credentials under ``data_dir`` as under ``agora up``.
    """
    data_dir = tmp_path / "secure"
    base = replace(
        Settings(),
        data_dir=data_dir,
        workspace=data_dir / "workspace",
        ack_wait_s=3.0,
        drain_timeout_s=2.0,
        query_timeout_s=2.0,
    )
    with EmbeddedNats(
        base.nats_dir, durability="os", extra_config=prepare_embedded_security(base)
    ) as server:
        yield replace(base, nats_urls=(server.url,))
