"""``agora demo``: a real embedded nats-server, every service as a process, three sample goals."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from events.catalog import GoalCompleted
from events.model import Event
from infra.bus import connect
from infra.client import AgoraClient
from infra.settings import Settings
from infra.supervisor import Supervisor

__all__ = ["SAMPLE_GOALS", "run_demo"]

SAMPLE_GOALS: list[tuple[str, dict[str, Any]]] = [
    (
        "explicit steps",
        {
            "text": "compute 17*23 then summarize",
            "steps": [
                {"tool": "calculator", "args": {"expression": "17*23"}},
                {"tool": "echo", "args": {"text": "17*23 = {{steps.s1.output}}"}},
            ],
            "expect": {"contains": "391"},
        },
    ),
    (
        "decomposed from text",
        {"text": "compute (2+3)*4 then echo agora is event-sourced then summarize"},
    ),
    (
        "revised after a failed evaluation",
        {
            # Iteration 1 gives the slow step 0.3 s and it times out; the rule-based revision
            # doubles the budget of failed tasks, so iteration 2 succeeds.
            "text": "wait for a slow step, then report",
            "steps": [
                {"tool": "sleep", "args": {"seconds": 0.45}, "timeout_s": 0.3},
                {"tool": "echo", "args": {"text": "the slow step finished"}},
            ],
            "expect": {"contains": "finished"},
        },
    ),
]


async def run_demo(settings: Settings, show: Callable[[str, str, list[Event]], None]) -> bool:
    """Runs the sample goals on a throw-away data dir; returns whether every goal completed."""
    with tempfile.TemporaryDirectory(prefix="agora-demo-") as tmp:
        demo_settings = replace(
            settings,
            nats_urls=None,
            nats_port=0,  # any free port: the demo never collides with a running `agora up`
            data_dir=Path(tmp),
            workspace=Path(tmp) / "workspace",
        )
        supervisor = Supervisor(demo_settings)
        await supervisor.start()
        try:
            nc = await connect(replace(demo_settings, nats_urls=(supervisor.url,)), "agora-demo")
            client = AgoraClient(nc)
            all_completed = True
            for title, command in SAMPLE_GOALS:
                started = time.perf_counter()
                submitted = await client.submit(command)
                events = await client.wait_for_outcome(submitted.goal_id, timeout_s=60)
                elapsed = time.perf_counter() - started
                show(
                    f"{title} — {submitted.goal_id} ({elapsed * 1000:.0f} ms)",
                    command["text"],
                    events,
                )
                all_completed &= isinstance(events[-1], GoalCompleted)
            await nc.close()
        finally:
            await supervisor.stop()
    return all_completed
