"""Where the platform's CPU goes under the standard throughput load.

python -m bench.profile                        # CPU ms per goal, per process
python -m bench.profile --py-spy out/          # plus a py-spy flame graph of every service
python -m bench.profile --in-flight 1 --goals 300   # one goal at a time (the latency load)

CPU time per goal (user + system, read from /proc) is the figure to compare before and after a
change: unlike goals/s it hardly moves when other work shares the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
from pathlib import Path

from bench.platform import (
    cpu_seconds,
    drive,
    percentile,
    platform_pids,
    running_platform,
    standard_goal,
    wait_until_idle,
    wakeups,
)
from bench.scenarios import cpu_per_goal_ms
from events.subjects import EVENTS_STREAM
from infra.bus.reader import stream_last_seq
from infra.logging import configure_logging


async def profile(goals: int, in_flight: int, durability: str, py_spy: Path | None) -> None:
    async with running_platform(durability) as (supervisor, nc):
        pids = platform_pids(supervisor)
        spies: list[asyncio.subprocess.Process] = []
        if py_spy is not None:
            venv_bin = str(Path(sys.executable).parent)
            spy = shutil.which("py-spy") or shutil.which("py-spy", path=venv_bin)
            if spy is None:
                raise SystemExit("py-spy is not installed: pip install py-spy")
            for name, pid in pids.items():
                if name == "nats-server":
                    continue
                spies.append(
                    await asyncio.create_subprocess_exec(
                        spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
                        "--output", str(py_spy / f"{name}.txt"),
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                    )
                )  # fmt: skip
        before_seq = await stream_last_seq(nc, EVENTS_STREAM)
        before, slept_before = cpu_seconds(pids), wakeups(pids)
        commands = [standard_goal(n, prefix="p") for n in range(goals)]
        load = await drive(nc, commands, in_flight=in_flight)
        await wait_until_idle(nc)
        after, slept_after = cpu_seconds(pids), wakeups(pids)
        events = await stream_last_seq(nc, EVENTS_STREAM) - before_seq
        for proc in spies:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(2)  # SIGINT: py-spy writes its profile and exits
            await proc.wait()
    per_goal = cpu_per_goal_ms(before, after, load.completed)
    print(
        f"{load.completed} goals ({load.failed} failed) in {load.seconds:.1f}s: "
        f"{load.goals_per_s:.0f} goals/s, {events / max(1, load.completed):.1f} events/goal, "
        f"p50 {percentile(load.latencies_ms, 50):.2f} ms"
    )
    goals_done = max(1, load.completed)
    for name, ms in sorted(per_goal.items(), key=lambda item: -item[1]):
        woken = (slept_after.get(name, 0) - slept_before.get(name, 0)) / goals_done
        # nats-server's goroutines run on threads of their own: its main thread says nothing.
        woke = "" if name in ("nats-server", "total") else f"  {woken:6.1f} wake-ups"
        print(f"  {name:<12} {ms:8.3f} ms CPU per goal{woke}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--goals", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--durability", choices=("os", "fsync"), default="os")
    parser.add_argument("--py-spy", type=Path, default=None, help="write raw py-spy profiles here")
    args = parser.parse_args()
    configure_logging("warning")
    if args.py_spy is not None:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    import uvloop

    uvloop.run(profile(args.goals, args.in_flight, args.durability, args.py_spy))


if __name__ == "__main__":
    main()
