"""The embedded nats-server runs with the Go runtime settings agora sets."""

from __future__ import annotations

import os
from pathlib import Path

from infra.platform.embedded import EmbeddedNats


def test_the_embedded_server_runs_with_its_gomemlimit(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path / "nats", durability="os", memory_limit="160MiB") as server:
        assert server.pid is not None
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
    assert b"GOMEMLIMIT=160MiB" in environ
    # The OS flushes: one thread (EmbeddedNats.max_procs), unless the environment says.
    assert f"GOMAXPROCS={os.environ.get('GOMAXPROCS', '1')}".encode() in environ
