"""`agora query` starts without what it does not use: other commands' modules, the services'
wire client, structlog (its logging is configured when a line is first logged), and a line
below the level costs nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys
from infra.cli import load_commands
from infra.cli.common import load_settings
from infra.logging import get_logger

load_commands(["query", "SELECT 1"])
load_settings()
import infra.bus.connection, infra.clients.query  # what the query connects and asks with

log = get_logger("agora.test")
log.info("below_the_level")
watched = ("structlog", "infra.bus.wire")
loaded = sorted(m for m in sys.modules if m.startswith("infra.cli.") or m in watched)
print(" ".join(loaded))
log.warning("above_the_level", n=1)
"""


def test_a_query_loads_only_its_command_and_logs_when_it_must(tmp_path: Path) -> None:
    env = {"AGORA_DATA_DIR": str(tmp_path), "AGORA_LOG_LEVEL": "warning", "PATH": "/usr/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["infra.cli.common", "infra.cli.query"]
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["event"], line["level"], line["n"]) for line in lines] == [
        ("above_the_level", "warning", 1)
    ]
