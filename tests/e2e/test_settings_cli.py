"""The settings as a user meets them: `agora settings` prints the documented table, and a bad
value stops a command with the variable named, before it connects anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from infra.cli.settings import settings_table

ROOT = Path(__file__).resolve().parents[2]


def _agora(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AGORA_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_table_prints_and_bad_values_are_named(tmp_path: Path) -> None:
    shown = _agora(tmp_path, "settings")
    assert (shown.returncode, shown.stdout.strip()) == (0, settings_table())

    port = _agora(tmp_path, "status", AGORA_NATS_PORT="abc")
    assert port.returncode == 2
    assert "AGORA_NATS_PORT='abc'" in port.stderr
    assert "Traceback" not in port.stderr

    trace = _agora(tmp_path, "goal", "compute 1+1", TRACEPARENT="00-nope")
    assert trace.returncode == 2
    assert "TRACEPARENT" in trace.stderr
