"""A JetStream cluster of nats-server nodes on loopback: ``agora up --cluster 3`` and tests.

Each node is an ``EmbeddedNats`` with a ``cluster {}`` block: its own client, route and
monitoring ports, its own store under ``<nats_dir>/cluster/node-<i>``, and routes to every
other node. With three nodes, R3 streams and consumers survive the loss of any one node.
Clients are given every node's URL, so they reconnect to a survivor.

For production, run nats-server yourself (on separate machines) and point agora at it with
``AGORA_NATS_URL=nats://a:4222,nats://b:4222,nats://c:4222`` and ``AGORA_STREAM_REPLICAS=3``
(docs/operations.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from events.errors import ConfigurationError
from infra.platform.embedded import DISCOVERY_FILE, EmbeddedNats

__all__ = ["ClusterNode", "EmbeddedCluster", "free_port"]

CLUSTER_NAME = "agora"


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ClusterNode(EmbeddedNats):
    """One node: the embedded server's configuration plus a cluster block and fixed ports."""

    cluster_port: int = 0
    routes: tuple[int, ...] = ()
    monitor_port: int = 0

    def config_text(self) -> str:
        base = (
            super()
            .config_text()
            .replace("http: 127.0.0.1:-1\n", f"http: 127.0.0.1:{self.monitor_port}\n")
        )
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.routes)
        return base + (
            "cluster {\n"
            f"  name: {CLUSTER_NAME}\n"
            f"  listen: 127.0.0.1:{self.cluster_port}\n"
            f"  routes: [{routes}]\n"
            "}\n"
        )

    def jetstream_state(self) -> dict[str, object]:
        """The node's ``/jsz`` monitoring answer (meta leader, cluster size, ...)."""
        url = f"http://127.0.0.1:{self.monitor_port}/jsz"
        with urllib.request.urlopen(url, timeout=2) as answer:
            state: dict[str, object] = json.loads(answer.read())
        return state

    def kill(self) -> None:
        """SIGKILL, as a crash would; ``start()`` brings it back on the same ports."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.stop()  # reaps the process and removes its discovery file


@dataclass
class EmbeddedCluster:
    """``size`` nodes forming one JetStream cluster; ``start()`` returns once it has a leader."""

    nats_dir: Path
    size: int = 3
    durability: str = "fsync"
    startup_timeout_s: float = 30.0
    # Appended to every node's configuration: client authorization and TLS (infra/platform/auth.py).
    # Routes between the nodes stay on loopback.
    extra_config: str = ""
    # Every node's Go soft memory limit (see EmbeddedNats.memory_limit).
    memory_limit: str = ""
    nodes: list[ClusterNode] = field(default_factory=list)

    def start(self) -> EmbeddedCluster:
        if self.size < 1:
            raise ConfigurationError("a cluster needs at least one node")
        cluster_ports = [free_port() for _ in range(self.size)]
        self.nodes = [
            ClusterNode(
                self.nats_dir / "cluster" / f"node-{i + 1}",
                durability=self.durability,
                server_name=f"agora-{i + 1}",
                port=free_port(),
                cluster_port=cluster_ports[i],
                routes=tuple(p for j, p in enumerate(cluster_ports) if j != i),
                monitor_port=free_port(),
                extra_config=self.extra_config,
                memory_limit=self.memory_limit,
                # Replication was not measured with one thread: Go's default.
                go_max_procs=0,
            )
            for i in range(self.size)
        ]
        try:
            for node in self.nodes:
                node.start()
            self.wait_for_leader()
        except BaseException:
            self.stop()
            raise
        # Other agora processes (the CLI) find the cluster like the single embedded server.
        (self.nats_dir / DISCOVERY_FILE).write_text(
            json.dumps({"pid": self.nodes[0].pid, "url": self.nodes[0].url})
        )
        return self

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node_named(self, server_name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.server_name == server_name)

    def wait_for_leader(self) -> str:
        """Block until the JetStream meta group has a leader that sees every other live node
        as a current peer (before that, R3 streams find "no suitable peers"); its name."""
        deadline = time.monotonic() + self.startup_timeout_s
        live = {node.server_name for node in self.nodes if node.pid is not None}
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, StopIteration):
                leader = self._meta(next(n for n in self.nodes if n.pid is not None)).get("leader")
                if leader in live:
                    meta = self._meta(self.node_named(str(leader)))
                    peers = {
                        str(peer.get("name"))
                        for peer in meta.get("replicas") or []
                        if isinstance(peer, dict) and peer.get("current")
                    }
                    if live - {leader} <= peers and meta.get("cluster_size") == self.size:
                        return str(leader)
            time.sleep(0.05)  # polling the monitoring endpoint, with a deadline
        raise ConfigurationError(
            f"the {self.size}-node JetStream cluster elected no leader within "
            f"{self.startup_timeout_s}s; see {self.nats_dir / 'cluster'}/node-*/nats-server.log"
        )

    @staticmethod
    def _meta(node: ClusterNode) -> dict[str, Any]:
        meta = node.jetstream_state().get("meta_cluster")
        return meta if isinstance(meta, dict) else {}

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        with contextlib.suppress(OSError):
            (self.nats_dir / DISCOVERY_FILE).unlink()

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
