"""What watching the platform costs: the throughput workload while traces and metrics are
exported and the dashboard is in use.

The platform runs the throughput benchmark's load (standard goals, 100 in flight) with three
observers beside it, each its own process as a user runs them: ``agora traces follow`` and
``agora metrics follow`` exporting over OTLP/HTTP to a receiver that decodes the protocol's
messages (in the bench's own process), and ``agora ui`` with a client loading the goals page
and the page of the goal submitted last, every second. Their CPU time (user + system) is held
against the platform's (nats-server and every service) over the same stretch, which ends when
the platform is idle and the trace follower has exported every goal.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from bench.harness import Row
from bench.platform import (
    cpu_seconds,
    drive,
    platform_pids,
    running_platform,
    standard_goal,
    wait_until_idle,
)
from infra.dashboard.server import url_file

__all__ = ["observed_throughput"]

# The budget: exporting traces and serving the dashboard cost under this share of the
# platform's CPU.
BUDGET_PERCENT = 10.0
_POLL_S = 1.0  # the dashboard client's refresh
_METRICS_INTERVAL_S = 10.0
_START_TIMEOUT_S = 60.0


def _observer(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "infra.cli", *args], env=env, stdout=out, stderr=out
        )


@contextlib.contextmanager
def _observers(env: dict[str, str], logs: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    procs = {
        "traces follow": _observer(["traces", "follow"], env, logs / "traces.log"),
        "metrics follow": _observer(
            ["metrics", "follow", "--interval", str(_METRICS_INTERVAL_S)], env, logs / "metrics.log"
        ),
        "ui": _observer(["ui", "--port", "0"], env, logs / "ui.log"),
    }
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def _until(
    what: str, check: Callable[[], bool], procs: dict[str, subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not check():
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)  # polling a starting process, with a deadline


async def _browse(url: str, last_goal: list[str], stop: asyncio.Event) -> int:
    """Load the goals page and the latest goal's page every second until ``stop``."""
    pages = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not stop.is_set():
            for path in ("/goals", *(f"/goals/{g}" for g in last_goal[-1:])):
                answer = await client.get(path)
                # The goal just submitted may not be in the views yet: a 404 is still a page.
                if not (answer.status_code == 404 and path != "/goals"):
                    answer.raise_for_status()
                pages += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _POLL_S)
    return pages


async def observed_throughput(goals: int, in_flight_goals: int = 100) -> list[Row]:
    from infra.traces.receiver import OtlpReceiver

    with OtlpReceiver(grpc_metrics=False) as receiver:  # HTTP only: gRPC threads and fork() argue
        async with running_platform("os") as (supervisor, nc):
            data_dir = supervisor.settings.data_dir
            env = {
                **supervisor.env,
                "AGORA_LOG_LEVEL": "error",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            }
            with _observers(env, data_dir) as procs:
                await _until("the dashboard listens", url_file(data_dir).exists, procs)
                url = url_file(data_dir).read_text().strip()
                for name in ("traces follow", "metrics follow"):  # they print when reading
                    log = data_dir / f"{name.split()[0]}.log"
                    await _until(f"{name} starts", lambda log=log: log.stat().st_size > 0, procs)
                platform = platform_pids(supervisor)
                observers = {name: proc.pid for name, proc in procs.items()}
                platform_before = cpu_seconds(platform)
                observers_before = cpu_seconds(observers)
                last_goal: list[str] = []
                stop = asyncio.Event()
                browsing = asyncio.ensure_future(_browse(url, last_goal, stop))
                commands = [standard_goal(n, prefix="obs") for n in range(goals)]

                def submitted() -> None:
                    last_goal.append(str(commands[len(last_goal)]["goal_id"]))

                load = await drive(nc, commands, in_flight=in_flight_goals, on_tick=submitted)
                await wait_until_idle(nc)

                def traced() -> int:
                    return sum(1 for s in receiver.spans() if s.name == "invoke_workflow agora")

                await _until("every goal's trace", lambda: traced() >= goals, procs)
                stop.set()
                pages = await browsing
                platform_cpu = cpu_seconds(platform)
                observers_cpu = cpu_seconds(observers)
                exported = traced()
    spent_platform = sum(platform_cpu[n] - platform_before.get(n, 0.0) for n in platform_cpu)
    spent = {n: observers_cpu[n] - observers_before.get(n, 0.0) for n in observers_cpu}
    share = 100 * sum(spent.values()) / spent_platform if spent_platform else float("nan")
    details = {
        "goals": load.completed,
        "goals_per_s": round(load.goals_per_s),
        "seconds": round(load.seconds, 2),
        "platform_cpu_s": round(spent_platform, 3),
        "platform_cpu_ms_per_goal": round(spent_platform * 1000 / max(1, load.completed), 3),
        "observers_cpu_s": {name: round(s, 3) for name, s in spent.items()},
        "observers_percent": {
            name: round(100 * s / spent_platform, 2) for name, s in spent.items()
        },
        "dashboard_pages": pages,
        "traces_exported": exported,
    }
    return [
        Row(
            f"observed throughput, {in_flight_goals} in flight: traces, metrics, dashboard",
            "observers' CPU share",
            share,
            "%",
            f"< {BUDGET_PERCENT:g} % of the platform's CPU",
            details,
        )
    ]
