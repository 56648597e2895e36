"""Scenario 6: a poison event (its handler always raises) is retried with backoff up to
AGORA_MAX_DELIVER, then recorded in AGORA_DLQ with the error, while the other goals keep at
least 90% of their normal throughput.

Throughput is measured under a steady load (a fixed number of goals in flight, topped up as
they finish) in alternating windows of equal length: without a poison event, then while a
fresh one is being retried, and so on. Comparing the sums over several rounds keeps a load
spike from another process on this shared machine from deciding the verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import PubAck

from events.catalog import PlanCreated
from events.model import Event
from events.subjects import DLQ_STREAM, EVENTS_STREAM
from infra.bus.connection import connect
from infra.bus.dlq import DeadLetter, decode_dead_letter
from infra.bus.publisher import EventPublisher
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.clients.query import projector_caught_up
from infra.platform.embedded import EmbeddedNats
from projections.service import database_path
from tests.conftest import InProcessPlatform
from tests.faults.checker import check_projection, collect
from tests.faults.conftest import report
from tests.faults.harness import count_finished, fault_settings, goal_command
from tests.support import wait_until

POISON_PREFIX = "poison-"


class PoisonError(RuntimeError):
    pass


class FailsForPoisonGoals(EventPublisher):
    """The planner's handler of a poison goal's goal_accepted (it plans) always raises."""

    calls: Counter[str] = Counter()

    async def __call__(
        self, events: Sequence[Event], *, new_goal: bool = False, **guard: Any
    ) -> list[PubAck]:
        goal_id = events[0].goal_id if events else ""
        if goal_id.startswith(POISON_PREFIX) and isinstance(events[0], PlanCreated):
            FailsForPoisonGoals.calls[goal_id] += 1
            raise PoisonError("planning this goal always fails (injected)")
        return await super().__call__(events, new_goal=new_goal, **guard)


@dataclass
class SteadyLoad:
    """Keeps ``in_flight`` goals submitted and not yet finished."""

    client: AgoraClient
    nc: NatsClient
    in_flight: int
    submitted: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            missing = self.in_flight - (len(self.submitted) - await count_finished(self.nc))
            commands = [goal_command("s", len(self.submitted) + i) for i in range(missing)]
            results = await asyncio.gather(*(self.client.submit(c) for c in commands))
            self.submitted += [r.goal_id for r in results]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)  # the top-up period


async def events_in_window(nc: NatsClient, window_s: float) -> int:
    """Events the platform stored during ``window_s`` (the clock is the measurement)."""
    js = nc.jetstream()
    before = (await js.stream_info(EVENTS_STREAM)).state.messages
    await asyncio.sleep(window_s)
    return int((await js.stream_info(EVENTS_STREAM)).state.messages - before)


async def dead_letters(nc: NatsClient) -> list[DeadLetter]:
    js = nc.jetstream()
    count = (await js.stream_info(DLQ_STREAM)).state.messages
    return [
        decode_dead_letter((await js.get_msg(DLQ_STREAM, seq)).data) for seq in range(1, count + 1)
    ]


# max_deliver 5: retried after 0.25 + 0.5 + 1 + 2 s, dead-lettered ~4 s after its first failure;
# 6 adds 4 s. Each poisoned window ends before its poison event is dead-lettered.
# Windows of a few seconds vary by +-30% on this shared machine when other work runs: the
# reduced run (one round, in `make test`) only reports the ratio; `make faults` sums six
# rounds and holds it to 90%.
@pytest.mark.parametrize(
    ("rounds", "window_s", "max_deliver", "in_flight", "hold_ratio"),
    [
        pytest.param(1, 1.5, 5, 100, False, id="reduced"),
        pytest.param(6, 3.0, 6, 200, True, id="full", marks=pytest.mark.faults),
    ],
)
async def test_poison_event_is_dead_lettered_while_other_goals_keep_their_throughput(
    tmp_path: Path,
    rounds: int,
    window_s: float,
    max_deliver: int,
    in_flight: int,
    hold_ratio: bool,
) -> None:
    server = EmbeddedNats(tmp_path / "nats", durability="os").start()
    settings = fault_settings(tmp_path, server.url, max_deliver=max_deliver)
    nc = await connect(settings, "fault-test")
    platform = InProcessPlatform(settings)
    FailsForPoisonGoals.calls.clear()
    client = AgoraClient(nc)
    load = SteadyLoad(client, nc, in_flight=in_flight)
    stop_load = asyncio.Event()
    normal: list[int] = []
    poisoned: list[int] = []
    still_retrying: list[bool] = []
    poison_ids = [f"{POISON_PREFIX}{r}" for r in range(rounds)]
    try:
        await provision(nc.jetstream(), settings)
        platform.start("planner", publisher=FailsForPoisonGoals)
        platform.start("executor", "memory", "evaluator", "projector")
        loader = asyncio.ensure_future(load.run(stop_load))
        await wait_until(
            lambda: _finished(nc, in_flight // 4), timeout_s=60, what="the load to warm up"
        )
        for round_no, poison in enumerate(poison_ids):
            # Rounds alternate which window comes first (A B, B A, ...), so a trend in the
            # platform's speed over the run does not favour either kind of window.
            if round_no % 2 == 0:
                normal.append(await events_in_window(nc, window_s))
            await client.submit(
                {
                    "goal_id": poison,
                    "text": "poison",
                    "steps": [{"tool": "echo", "args": {"text": "x"}}],
                }
            )
            await wait_until(
                lambda p=poison: _tried(p), timeout_s=30, what=f"{poison} to fail once"
            )
            poisoned.append(await events_in_window(nc, window_s))
            still_retrying.append(FailsForPoisonGoals.calls[poison] < max_deliver)
            await wait_until(
                lambda n=round_no + 1: _dead_lettered(nc, n),
                timeout_s=60,
                what=f"{poison} in the DLQ",
            )
            if round_no % 2 == 1:
                normal.append(await events_in_window(nc, window_s))
        stop_load.set()
        await loader
        await wait_until(
            lambda: _finished(nc, len(load.submitted)), timeout_s=120, what="the load to drain"
        )
        letters = await dead_letters(nc)
        await projector_caught_up(nc, timeout_s=60)
        await platform.stop()

        verdict = await collect("6 poison event", nc, load.submitted, dead_lettered=poison_ids)
        await check_projection(verdict, nc, database_path(settings), tmp_path / "rebuilt.duckdb")
        ratio = sum(poisoned) / sum(normal) if sum(normal) else 0.0
        verdict.counts.update(
            {
                "events_per_normal_window": round(sum(normal) / rounds),
                "events_per_poisoned_window": round(sum(poisoned) / rounds),
                "dead_letters": len(letters),
            }
        )
        report(verdict.line() + f" throughput_ratio={ratio:.2f} windows={normal}/{poisoned}")
        assert verdict.ok, verdict.explain()
        assert sorted(letter.subject for letter in letters) == [
            f"agora.events.{p}.goal_accepted" for p in poison_ids
        ]
        for letter in letters:
            assert letter.reason == "max_deliveries"
            assert letter.deliveries == max_deliver
            assert "planning this goal always fails" in letter.error
        assert all(FailsForPoisonGoals.calls[p] == max_deliver for p in poison_ids)
        assert all(still_retrying), "a window ended after its poison event was dead-lettered"
        assert not hold_ratio or ratio >= 0.9, (
            f"events per window with a poison event {poisoned}, without {normal}"
        )
    finally:
        stop_load.set()
        await platform.stop()
        await nc.close()
        server.stop()


async def _finished(nc: NatsClient, n: int) -> bool:
    return await count_finished(nc) >= n


async def _tried(poison: str) -> bool:
    return FailsForPoisonGoals.calls[poison] >= 1


async def _dead_lettered(nc: NatsClient, n: int) -> bool:
    return (await nc.jetstream().stream_info(DLQ_STREAM)).state.messages >= n
