"""Which processes are agora's own for a data dir, and what a restart tells the user."""

from __future__ import annotations

import sys
from pathlib import Path

from infra.platform.children import Leftover, classify, describe_leftovers, die_with_parent

DATA = Path("/srv/agora")
NATS = DATA / "nats"


def test_the_server_and_the_services_of_this_data_dir_are_ours() -> None:
    server = ["/venv/bin/nats-server", "-c", str(NATS / "nats-server.conf")]
    assert classify(server, {}, DATA, NATS) == "nats-server"
    service = [sys.executable, "-m", "infra.cli", "service", "planner"]
    assert classify(service, {"AGORA_DATA_DIR": str(DATA)}, DATA, NATS) == "planner"
    dashboard = [sys.executable, "-m", "infra.cli", "ui", "--host", "127.0.0.1", "--port", "0"]
    assert classify(dashboard, {"AGORA_DATA_DIR": str(DATA)}, DATA, NATS) == "dashboard"


def test_another_data_dir_or_program_is_not() -> None:
    other = ["/venv/bin/nats-server", "-c", "/elsewhere/nats/nats-server.conf"]
    assert classify(other, {}, DATA, NATS) is None
    service = [sys.executable, "-m", "infra.cli", "service", "planner"]
    assert classify(service, {"AGORA_DATA_DIR": "/elsewhere"}, DATA, NATS) is None
    assert classify(service, {}, DATA, NATS) is None
    query = [sys.executable, "-m", "infra.cli", "query", "SELECT 1"]
    assert classify(query, {"AGORA_DATA_DIR": str(DATA)}, DATA, NATS) is None
    assert classify(["/bin/sleep", "600"], {"AGORA_DATA_DIR": str(DATA)}, DATA, NATS) is None
    assert classify([], {}, DATA, NATS) is None


def test_a_restart_names_each_leftover_and_how_to_stop_them() -> None:
    message = describe_leftovers([Leftover(12, "nats-server"), Leftover(34, "planner")], DATA)
    assert "nats-server (pid 12), planner (pid 34)" in message
    assert "kill 12 34" in message
    assert str(DATA) in message


def test_a_child_is_exec_wrapped_with_the_supervisors_pid() -> None:
    wrapped = die_with_parent(["/bin/true", "x"])
    assert wrapped[0] == sys.executable
    assert wrapped[-2:] == ["/bin/true", "x"]
    assert "prctl(1, 15" in wrapped[2]  # PR_SET_PDEATHSIG, SIGTERM
