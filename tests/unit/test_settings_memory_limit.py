"""The embedded server's Go runtime settings: the memory limit (a size the Go runtime accepts,
passed as GOMEMLIMIT) and how many threads run Go code (GOMAXPROCS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.errors import ConfigurationError
from infra.platform.embedded import EmbeddedNats, server_env
from infra.settings import Settings


def test_the_limit_reaches_the_server_unless_the_environment_sets_its_own() -> None:
    assert server_env("192MiB", {"PATH": "/bin"})["GOMEMLIMIT"] == "192MiB"
    assert server_env("192MiB", {"GOMEMLIMIT": "1GiB"})["GOMEMLIMIT"] == "1GiB"
    assert "GOMEMLIMIT" not in server_env("", {"PATH": "/bin"})


@pytest.mark.parametrize("value", ["192MiB", "1GiB", "500000000", ""])
def test_sizes_the_go_runtime_accepts_are_taken(value: str) -> None:
    assert Settings.from_env({"AGORA_NATS_MEMORY_LIMIT": value}).nats_memory_limit == value


@pytest.mark.parametrize("value", ["lots", "192MB", "1.5GiB", "-1"])
def test_anything_else_is_refused_with_the_units_named(value: str) -> None:
    with pytest.raises(ConfigurationError, match="MiB"):
        Settings.from_env({"AGORA_NATS_MEMORY_LIMIT": value})


def test_one_go_thread_when_the_os_flushes_unless_the_environment_says() -> None:
    assert server_env("", {"PATH": "/bin"}, max_procs=1)["GOMAXPROCS"] == "1"
    assert server_env("", {"GOMAXPROCS": "4"}, max_procs=1)["GOMAXPROCS"] == "4"
    assert "GOMAXPROCS" not in server_env("", {"PATH": "/bin"})
    assert EmbeddedNats(Path("n"), durability="os").max_procs == 1
    assert EmbeddedNats(Path("n"), durability="fsync").max_procs == 0
    assert EmbeddedNats(Path("n"), durability="os", go_max_procs=0).max_procs == 0
