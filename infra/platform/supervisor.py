"""``agora up``: nats-server (unless external) and each service as its own OS process.

A service that exits unexpectedly is restarted with exponential backoff, and so is the
embedded nats-server (on the same port and store, so every client reconnects); SIGINT/SIGTERM
stop every service (they drain their in-flight work) and then the server. Every child gets
SIGTERM from the kernel when the supervisor dies, even by SIGKILL (infra/platform/children.py),
and a start that finds agora's processes from an earlier run names them. With ``dashboard``
set, the web dashboard (``agora ui``) is one more child, kept running like a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from events.errors import ConfigurationError
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.environment import process_environment
from infra.logging import get_logger
from infra.platform.auth import ADMIN, check_secret_files, prepare_embedded_security, service_env
from infra.platform.children import describe_leftovers, die_with_parent, find_leftovers
from infra.platform.cluster import EmbeddedCluster
from infra.platform.embedded import EmbeddedNats
from infra.platform.runner import SERVICES
from infra.settings import Settings

__all__ = ["DASHBOARD", "DashboardBinding", "Supervisor", "restart_delay_s"]

log = get_logger("agora.supervisor")
HEALTHY_AFTER_S = 30.0
SERVER_CHECK_S = 0.25
DASHBOARD = "ui"  # the dashboard child's name, beside the services'


@dataclass(frozen=True, slots=True)
class DashboardBinding:
    """Where the supervised dashboard listens (port 0: any free port, see its URL file)."""

    host: str
    port: int


def restart_delay_s(consecutive_failures: int) -> float:
    # Bounded exponent: after ~1000 crashes 2**n no longer converts to a float, and the watcher
    # would die with OverflowError, never restarting the service again.
    doublings = min(max(0, consecutive_failures - 1), 64)
    return float(min(30.0, 0.5 * 2**doublings))


@dataclass
class Supervisor:
    settings: Settings
    services: Sequence[str] = SERVICES
    server: EmbeddedNats | None = None
    _procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _watchers: list[asyncio.Task[None]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # > 1: run that many embedded nats-server nodes as one JetStream cluster (R``cluster``).
    cluster: int = 0
    nats_cluster: EmbeddedCluster | None = None
    # Also run the web dashboard as a child, bound here (None: no dashboard).
    dashboard: DashboardBinding | None = None

    async def start(self) -> None:
        if self.settings.embedded:
            leftovers = find_leftovers(self.settings.data_dir, self.settings.nats_dir)
            if leftovers:
                raise ConfigurationError(describe_leftovers(leftovers, self.settings.data_dir))
        if self.cluster > 1 and self.settings.embedded:
            self.nats_cluster = EmbeddedCluster(
                self.settings.nats_dir,
                size=self.cluster,
                durability=self.settings.durability,
                extra_config=prepare_embedded_security(self.settings),
                memory_limit=self.settings.nats_memory_limit,
            ).start()
            self.settings = replace(
                self.settings,
                nats_urls=tuple(self.nats_cluster.urls),
                stream_replicas=min(self.cluster, 3),
            )
            log.info("nats_cluster_started", urls=self.nats_cluster.urls)
        elif self.settings.embedded:
            self.server = EmbeddedNats(
                self.settings.nats_dir,
                durability=self.settings.durability,
                port=self.settings.nats_port or -1,
                max_store_bytes=self.settings.nats_max_store_mb * 1024 * 1024 or None,
                extra_config=prepare_embedded_security(self.settings),
                die_with_parent=True,
                memory_limit=self.settings.nats_memory_limit,
            ).start()
            log.info("nats_started", url=self.server.url, pid=self.server.pid)
            self._watchers.append(asyncio.ensure_future(self._keep_server_running(self.server)))
        check_secret_files(self.settings)
        nc = await connect(self.settings, name="agora-supervisor", identity=ADMIN)
        try:
            await provision(nc.jetstream(), self.settings)
        finally:
            await nc.close()
        # Children run with exactly the supervisor's settings, whatever the parent's env says.
        self.env = {**process_environment(), **self.settings.to_env(), "AGORA_NATS_URL": self.url}
        if self._embedded and self.settings.nats_auth:
            # Each service gets its own identity below, never the operator's.
            for name in ("AGORA_NATS_USER", "AGORA_NATS_PASSWORD", "AGORA_NATS_CREDS"):
                self.env.pop(name, None)
        names = [*self.services, *([DASHBOARD] if self.dashboard is not None else [])]
        for name in names:
            self._watchers.append(asyncio.ensure_future(self._keep_running(name)))

    @property
    def _embedded(self) -> bool:
        return self.server is not None or self.nats_cluster is not None

    @property
    def url(self) -> str:
        return self.server.url if self.server else ",".join(self.settings.nats_urls or ())

    def pid_of(self, service: str) -> int | None:
        proc = self._procs.get(service)
        return proc.pid if proc and proc.returncode is None else None

    async def _spawn(self, name: str) -> asyncio.subprocess.Process:
        if name == DASHBOARD and self.dashboard is not None:
            # As the client identity, whose credentials it finds in the data dir like the CLI.
            binding = self.dashboard
            command = ["ui", "--host", binding.host, "--port", str(binding.port)]
            env = self.env
        else:
            command = ["service", name]
            env = {**self.env, **service_env(self.settings, name)} if self._embedded else self.env
        argv = die_with_parent([sys.executable, "-m", "infra.cli", *command])
        return await asyncio.create_subprocess_exec(*argv, env=env)

    async def _keep_server_running(self, server: EmbeddedNats) -> None:
        """Restart the embedded server when it dies, like any child (same port, same store)."""
        failures = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            while server.running():
                # The server is a plain Popen child: look at it between short waits.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), SERVER_CHECK_S)
                if self._stopping.is_set():
                    return
            failures = 1 if time.monotonic() - started > HEALTHY_AFTER_S else failures + 1
            delay = restart_delay_s(failures)
            log.warning("nats_exited", code=server.exit_code(), restart_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            try:
                # On this thread: the kernel's parent-death signal follows the thread that
                # started the child, and this one lives as long as the supervisor.
                server.start()
            except ConfigurationError as exc:
                log.warning("nats_restart_failed", error=str(exc))
                continue
            log.info("nats_restarted", url=server.url, pid=server.pid)

    async def _keep_running(self, name: str) -> None:
        failures = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            proc = self._procs[name] = await self._spawn(name)
            log.info("service_spawned", service=name, pid=proc.pid)
            code = await proc.wait()
            if self._stopping.is_set():
                return
            failures = 1 if time.monotonic() - started > HEALTHY_AFTER_S else failures + 1
            delay = restart_delay_s(failures)
            log.warning("service_exited", service=name, code=code, restart_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def stop(self, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self._procs.values():
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for watcher in self._watchers:
            watcher.cancel()
        if self.server is not None:
            self.server.stop()
            log.info("nats_stopped")
        if self.nats_cluster is not None:
            self.nats_cluster.stop()
            log.info("nats_cluster_stopped")
