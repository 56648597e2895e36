"""Scenario: 1,000 goals sleeping 60 s on durable timers, with every agora process and
nats-server SIGKILLed mid-sleep and restarted: all wake and complete once, and while they
sleep the platform's memory does not grow with them beyond their events."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from events.catalog import GoalCompleted, TaskCompleted, TimerFired, TimerStarted
from events.subjects import EVENTS_STREAM
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.platform.embedded import EmbeddedNats
from tests.faults.conftest import report
from tests.faults.harness import ServiceProcesses, fault_settings, submit_all, wait_all_finished
from tests.support import all_events, duplicates, wait_until

SERVICES = ("planner", "executor", "memory", "evaluator", "projector")
SLEEP_S = 60


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sleeper(n: int, prefix: str = "zz") -> dict[str, object]:
    return {
        "command_id": f"cmd-{prefix}-{n}",
        "goal_id": f"{prefix}-{n}",
        "text": "sleep a minute, then say done",
        "steps": [
            {"tool": "sleep", "args": {"seconds": SLEEP_S}},
            {"tool": "echo", "args": {"text": f"done {n}"}},
        ],
    }


@pytest.mark.faults
async def test_a_thousand_goals_sleep_a_minute_through_a_restart_of_everything(
    tmp_path: Path,
) -> None:
    goals = 1000
    server = EmbeddedNats(tmp_path / "nats", durability="fsync").start()
    settings = fault_settings(tmp_path, server.url)  # the default threshold: 30 s
    nc = await connect(settings, "fault-test")
    procs = ServiceProcesses(settings, log_dir=tmp_path / "logs")
    try:
        await provision(nc.jetstream(), settings)
        for name in SERVICES:
            procs.start(name)
        client = AgoraClient(nc)
        # Warm up: one short goal through every service, then the baseline.
        await submit_all(
            client,
            [
                {
                    "goal_id": "warm",
                    "text": "say hi",
                    "steps": [{"tool": "echo", "args": {"text": "hi"}}],
                }
            ],
        )
        await wait_all_finished(nc, 1, timeout_s=60)

        def platform_rss() -> dict[str, float]:
            assert server.pid is not None
            by_process = {key: rss_mb(p.pid) for key, p in procs.procs.items()}
            return {"nats-server": rss_mb(server.pid), **by_process}

        before = platform_rss()
        started = time.monotonic()
        goal_ids = await submit_all(client, [sleeper(n) for n in range(goals)])
        js = nc.jetstream()

        async def all_waiting() -> bool:
            info = await js.stream_info(
                EVENTS_STREAM, subjects_filter="agora.events.*.timer_started"
            )
            return len(info.state.subjects or {}) == goals

        await wait_until(all_waiting, timeout_s=SLEEP_S / 2, what="every goal on its timer")

        async def nothing_held() -> bool:
            # No delivery unacked, no tool call running: the sleeps are only stored messages.
            return (await js.consumer_info(EVENTS_STREAM, "executor")).num_ack_pending == 0

        await wait_until(nothing_held, timeout_s=10, what="every sleeping task acked")
        sleeping = platform_rss()
        log_mb = (await js.stream_info(EVENTS_STREAM)).state.bytes / 2**20

        # Mid-sleep, everything dies: every agora process and nats-server, SIGKILL.
        for key in list(procs.procs):
            procs.kill(key)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        server.stop()
        server.start()
        for name in SERVICES:
            procs.start(name)
        assert time.monotonic() - started < SLEEP_S, "restarted after the timers fell due"

        await wait_all_finished(nc, goals + 1, timeout_s=SLEEP_S + 120)
        elapsed = time.monotonic() - started
        log = await all_events(nc)
        assert duplicates(log) == {}
        counts = Counter((type(e).__name__, e.goal_id) for e in log)
        for goal_id in goal_ids:
            for kind in (TimerStarted, TimerFired, GoalCompleted):
                assert counts[(kind.__name__, goal_id)] == 1, (kind.__name__, goal_id)
            assert counts[(TaskCompleted.__name__, goal_id)] == 2, goal_id
        grew = {key: sleeping[key] - before[key] for key in before}
        report(
            f"sleeping goals: {goals} x {SLEEP_S}s, every process and nats-server SIGKILLed "
            f"mid-sleep: {goals} completed once each in {elapsed:.0f}s; RSS growth while they "
            f"slept (MB): "
            + ", ".join(f"{key} {mb:+.1f}" for key, mb in grew.items())
            + f"; their events: {log_mb:.1f} MB"
        )
        # The services that run goals hold nothing per sleeping goal: no process, no task, no
        # delivery. What grows is where their events are kept: nats-server (the log and the
        # timers) and the projector's DuckDB views of them.
        agents = sum(grew[key] for key in ("planner", "executor", "memory", "evaluator"))
        assert agents < 20, f"the agent services grew {agents:.1f} MB with the sleeping goals"
        assert grew["executor"] < 8, f"the executor grew {grew['executor']:.1f} MB"
    finally:
        procs.stop_all()
        await nc.close()
        server.stop()
