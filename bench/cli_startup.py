"""How long the ``agora`` command takes to start: ``python -m bench.cli_startup [RUNS]``.

`make bench` runs it as the ``startup`` scenario. It starts ``agora up`` in a temporary data
directory, then runs each command RUNS times as a process, as a user at a shell would: ``agora
--help``, and ``agora query 'SELECT 1'`` asked of that platform's projector and answered
(start, connect, ask, print, exit). It reports the median wall time, held against the
targets, and the median CPU time (user + system, from ``getrusage(RUSAGE_CHILDREN)``, so
other work on a shared machine does not count) beside it.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.harness import Row

__all__ = ["TARGETS_MS", "run_cli_startup"]

AGORA = [sys.executable, "-m", "infra.cli"]
# Each command measured, what it is reported as, and its target (median wall time, ms).
COMMANDS: dict[str, list[str]] = {
    "agora --help": ["--help"],
    "agora query 'SELECT 1' against agora up": ["query", "SELECT 1"],
}
TARGETS_MS: dict[str, float] = {
    "agora --help": 150,
    "agora query 'SELECT 1' against agora up": 250,
}
SCENARIO = "start-up of the agora command"


def _client_env(data_dir: Path) -> dict[str, str]:
    """The caller's environment without its agora variables, pointed at ``data_dir``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGORA_")}
    return {**env, "AGORA_DATA_DIR": str(data_dir)}


@contextmanager
def _agora_up(data_dir: Path, timeout_s: float = 60.0) -> Iterator[dict[str, str]]:
    """``agora up`` on a free port, until its projector answers a query."""
    env = _client_env(data_dir)
    server_env = {**env, "AGORA_NATS_PORT": "0", "AGORA_DURABILITY": "os", "AGORA_UI": "off"}
    up = subprocess.Popen(
        [*AGORA, "up"], env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + timeout_s
        while _run(["query", "SELECT 1"], env).returncode != 0:
            if up.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("agora up did not start answering queries")
        yield env
    finally:
        up.terminate()
        up.wait(30)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*AGORA, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )


def _timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of one run, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = _run(args, env)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"agora {' '.join(args)} failed: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1000, cpu * 1000


def run_cli_startup(runs: int = 20) -> list[Row]:
    """The median of ``runs`` runs of each command (they alternate, so load that comes and
    goes on the machine weighs on each alike)."""
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpus: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="agora-bench-") as tmp, _agora_up(Path(tmp)) as env:
        for args in COMMANDS.values():
            _run(args, env)  # the bytecode cached, as on every start after the first
        for _ in range(runs):
            for name, args in COMMANDS.items():
                wall, cpu = _timed(args, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    return [
        Row(
            SCENARIO,
            f"{name} (median wall)",
            statistics.median(walls[name]),
            "ms",
            f"≤ {TARGETS_MS[name]:.0f} ms",
            {
                "runs": runs,
                "wall_min_ms": round(min(walls[name]), 1),
                "cpu_median_ms": round(statistics.median(cpus[name]), 1),
                "cpu_min_ms": round(min(cpus[name]), 1),
            },
        )
        for name in COMMANDS
    ]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    for row in run_cli_startup(runs):
        print(
            f"{row.metric:<52} {row.value:6.0f} ms (target {row.target}); "
            f"CPU median {row.details['cpu_median_ms']:.0f} ms, {runs} runs"
        )


if __name__ == "__main__":
    main()
