"""`agora query` starts without what it does not use: typer, pydantic and nats-py (its plain
form is read, configured and asked without them), other commands' modules, structlog (its
logging is configured when a line is first logged), and a line below the level costs
nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys
from infra.cli import main
from infra.logging import get_logger

sys.argv = ["agora", "query", "SELECT 1"]
try:
    main()  # no server runs for this data dir: it says so once it has asked for one
except SystemExit as exit:
    print(exit.code)
log = get_logger("agora.test")
log.info("below_the_level")
watched = ("structlog", "typer", "pydantic", "nats", "infra.bus.wire", "infra.settings")
loaded = sorted(m for m in sys.modules if m.startswith("infra.cli.") or m in watched)
print(" ".join(loaded))
log.warning("above_the_level", n=1)
"""


def test_a_query_loads_only_what_it_asks_with_and_logs_when_it_must(tmp_path: Path) -> None:
    env = {"AGORA_DATA_DIR": str(tmp_path), "AGORA_LOG_LEVEL": "warning", "PATH": "/usr/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    code, loaded = done.stdout.splitlines()
    assert code == "2"
    assert loaded.split() == [
        "infra.bus.wire",
        "infra.cli.answers",
        "infra.cli.console",  # to say that no server runs
        "infra.cli.exits",
        "infra.cli.fast_query",
        "infra.cli.runtime",
    ]
    said, *logged = done.stderr.splitlines()
    assert "no agora NATS server is running" in said
    lines = [json.loads(line) for line in logged]
    assert [(line["event"], line["level"], line["n"]) for line in lines] == [
        ("above_the_level", "warning", 1)
    ]
