"""CPU time of starting the ``agora`` command: ``python -m bench.cli_startup [RUNS]``.

Each command runs RUNS times as a process; the CPU time (user + system) of each run comes
from ``resource.getrusage(RUSAGE_CHILDREN)``, so other work on the box does not count. The
query start is measured up to the connection attempt (no server: it stops right there).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile

COMMANDS = {
    "agora --help": ["--help"],
    "agora query (start)": ["query", "SELECT 1"],
}


def cpu_of(args: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "AGORA_DATA_DIR": empty}
        for name, args in COMMANDS.items():
            times = sorted(cpu_of(args, env) * 1000 for _ in range(runs))
            print(
                f"{name:<22} CPU ms: min {times[0]:.0f}, median {statistics.median(times):.0f}"
                f", max {times[-1]:.0f} ({runs} runs)"
            )


if __name__ == "__main__":
    main()
