"""Dashboard: how long its pages take with 1,000 and with 100,000 goals in the views.

The blackboard is built as ``bench/query.py`` builds it (synthetic goals straight into the
projector's file), the real projector answers on ``agora.query``, and the dashboard's app is
served by uvicorn over real HTTP, reading only through the query subject and the event stream
(the goal measured has its events on the stream too). Each page is fetched over HTTP, as a
browser would ask for it: the goals list's first page, a page deep in it (by its keyset
cursor), a search (which scans every goal's text), and one goal's page.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx
import nats

from bench.harness import Row
from bench.platform import percentile
from bench.query import build_blackboard, projector_answering
from bench.synthetic import goal_events
from events.codec import encode
from events.model import event_type
from events.subjects import event_subject
from infra.bus.streams import provision_streams
from infra.clients.goals import AgoraClient
from infra.dashboard.app import Dashboard, build_app
from infra.dashboard.auth import Access
from infra.dashboard.live import GoalsHub
from infra.dashboard.queries import Cursor
from infra.dashboard.server import serving_on_a_free_port
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings
from projections.service import database_path

__all__ = ["run_dashboard"]

SIZES = (1_000, 100_000)


async def _timed_gets(http: httpx.AsyncClient, path: str, runs: int) -> list[float]:
    latencies = []
    for _ in range(runs):
        began = time.perf_counter()
        answer = await http.get(path, headers={"Accept": "text/html"})
        latencies.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:200]}")
    return latencies


async def _no_operator() -> nats.NATS:
    raise RuntimeError("the benchmark retries nothing")


async def _measure(goals: int, runs: int) -> dict[str, float]:
    rnd = random.Random(5)
    with tempfile.TemporaryDirectory(prefix="agora-bench-ui-") as tmp:
        settings = replace(Settings.from_env({}), data_dir=Path(tmp), nats_port=0, durability="os")
        await build_blackboard(database_path(settings), goals)
        with EmbeddedNats(settings.nats_dir, durability="os", port=-1) as server:
            env = {**os.environ, **settings.to_env(), "AGORA_NATS_URL": server.url}
            projector = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "infra.cli", "service", "projector", env=env
            )
            nc = await nats.connect(server.url)
            hub = GoalsHub(nc)
            try:
                js = nc.jetstream()
                await provision_streams(js, settings)
                await projector_answering(nc)
                # The measured goal's own events on the stream: its page reads them there.
                middle = goals // 2
                for event in goal_events(middle, rnd):
                    await js.publish(event_subject(event.goal_id, event_type(event)), encode(event))
                client = AgoraClient(nc)
                deep = await client.query(
                    "SELECT CAST(submitted_at AS VARCHAR) AS at, goal_id FROM goals "
                    "ORDER BY submitted_at DESC, goal_id DESC LIMIT 1 OFFSET ?",
                    params=[goals - 30],
                    timeout_s=30,
                )
                at, last_id = deep.rows[0]
                await hub.start()
                dashboard = Dashboard(client=client, hub=hub, operator=_no_operator)
                deep_page = (
                    f"/goals?{httpx.QueryParams(after=Cursor(str(at), str(last_id)).encode())}"
                )
                app = build_app(dashboard, Access(None))
                async with (
                    serving_on_a_free_port(app, data_dir=settings.data_dir) as base,
                    httpx.AsyncClient(base_url=base, timeout=60) as http,
                ):
                    await _timed_gets(http, "/goals", 3)  # warm: the first query opens caches
                    return {
                        "goals_page_ms": percentile(await _timed_gets(http, "/goals", runs), 50),
                        "deep_page_ms": percentile(
                            await _timed_gets(http, deep_page, runs),
                            50,
                        ),
                        "search_ms": percentile(
                            await _timed_gets(http, "/goals?q=team+3", max(3, runs // 5)), 50
                        ),
                        "goal_page_ms": percentile(
                            await _timed_gets(http, f"/goals/bench-{middle:08d}", runs), 50
                        ),
                    }
            finally:
                await hub.stop()
                await nc.close()
                projector.terminate()
                await projector.wait()


async def _measured_alone(goals: int, runs: int) -> dict[str, float]:
    """One size in a process of its own: a fresh projector, server and uvicorn each time."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.dashboard", str(goals), str(runs),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"measuring the dashboard with {goals} goals failed")
    figures: dict[str, float] = json.loads(out.decode().splitlines()[-1])
    return figures


async def run_dashboard(runs: int = 30) -> list[Row]:
    measured = {goals: await _measured_alone(goals, runs) for goals in SIZES}
    small, large = measured[SIZES[0]], measured[SIZES[-1]]
    details = {f"{goals}_goals": figures for goals, figures in measured.items()}
    name = f"dashboard: pages over HTTP, {SIZES[0]:,} vs {SIZES[-1]:,} goals in the views"
    labels = {
        "goals_page_ms": "goals page (first 25, keyset) p50",
        "deep_page_ms": "the goals list's last page (keyset cursor) p50",
        "goal_page_ms": "one goal's page p50",
        "search_ms": "goals page with a search (scans every text) p50",
    }
    return [
        Row(
            name,
            f"{label} at {SIZES[-1]:,} goals",
            large[key],
            "ms",
            f"{small[key]:.1f} ms at {SIZES[0]:,} goals",
            details,
        )
        for key, label in labels.items()
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3:  # one size, as _measured_alone runs it: its figures as JSON
        print(json.dumps(asyncio.run(_measure(int(sys.argv[1]), int(sys.argv[2])))))
    else:
        for row in asyncio.run(run_dashboard()):
            print(f"{row.metric}: {row.value:.1f} {row.unit} ({row.target})")
