"""Scenario 6: a poison event (its handler always raises) is retried with backoff up to
AGORA_MAX_DELIVER, then recorded in AGORA_DLQ with the error, while the other goals keep at
least 90% of their normal throughput."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import PubAck

from events.catalog import PlanCreated
from events.model import Event
from events.subjects import DLQ_STREAM, dlq_subject
from infra.bus import EventPublisher, connect
from infra.client import AgoraClient
from infra.dlq import decode_dead_letter
from infra.embedded import EmbeddedNats
from infra.query_client import projector_caught_up
from infra.streams import provision
from projections.service import database_path
from tests.conftest import InProcessPlatform
from tests.faults.checker import check_projection, collect
from tests.faults.conftest import report
from tests.faults.harness import count_finished, fault_settings, goal_command, submit_all
from tests.support import wait_until

POISON = "poison-goal"


class PoisonError(RuntimeError):
    pass


class FailsForThePoisonGoal(EventPublisher):
    """The planner's handler of the poison goal's context_provided always raises."""

    calls = 0

    @classmethod
    async def tried(cls) -> bool:
        return cls.calls >= 1

    async def __call__(
        self, events: Sequence[Event], *, new_goal: bool = False, **guard: Any
    ) -> list[PubAck]:
        if events and events[0].goal_id == POISON and isinstance(events[0], PlanCreated):
            FailsForThePoisonGoal.calls += 1
            raise PoisonError("planning this goal always fails (injected)")
        return await super().__call__(events, new_goal=new_goal, **guard)


async def finished_in_window(nc: NatsClient, before: int, window_s: float) -> int:
    """Goals that finished during ``window_s`` (the clock here is the measurement itself)."""
    await asyncio.sleep(window_s)
    return await count_finished(nc) - before


# max_deliver 5: retried after 0.25 + 0.5 + 1 + 2 s, dead-lettered ~4 s after its first failure;
# 7 adds 4 + 8 s. The measuring window must end before that.
@pytest.mark.parametrize(
    ("backlog", "window_s", "max_deliver"),
    [
        pytest.param(150, 2.0, 5, id="reduced"),
        pytest.param(800, 6.0, 7, id="full", marks=pytest.mark.faults),
    ],
)
async def test_poison_event_is_dead_lettered_while_other_goals_keep_their_throughput(
    tmp_path: Path, backlog: int, window_s: float, max_deliver: int
) -> None:
    server = EmbeddedNats(tmp_path / "nats", durability="os").start()
    settings = fault_settings(tmp_path, server.url, max_deliver=max_deliver)
    nc = await connect(settings, "fault-test")
    platform = InProcessPlatform(settings)
    FailsForThePoisonGoal.calls = 0
    client = AgoraClient(nc)
    try:
        await provision(nc.jetstream(), settings)
        platform.start("planner", publisher=FailsForThePoisonGoal)
        platform.start("executor", "memory", "evaluator", "projector")
        js = nc.jetstream()

        # Normal throughput: a backlog, finishes counted over a fixed window after a warm-up.
        normal_ids = await submit_all(client, [goal_command("a", n) for n in range(backlog)])
        await wait_until(
            lambda: _at_least(nc, 1), timeout_s=30, what="the first normal goal to finish"
        )
        normal = await finished_in_window(nc, await count_finished(nc), window_s)
        await wait_until(lambda: _at_least(nc, backlog), timeout_s=120, what="phase A to end")

        # The same again while the poison event is being retried.
        await client.submit(
            {
                "goal_id": POISON,
                "text": "poison",
                "steps": [{"tool": "echo", "args": {"text": "x"}}],
            }
        )
        await wait_until(
            FailsForThePoisonGoal.tried, timeout_s=30, what="the poison event's first failure"
        )
        poisoned_ids = await submit_all(client, [goal_command("b", n) for n in range(backlog)])
        await wait_until(
            lambda: _at_least(nc, backlog + 1), timeout_s=30, what="the first goal of phase B"
        )
        during = await finished_in_window(nc, await count_finished(nc), window_s)
        still_retrying = FailsForThePoisonGoal.calls < max_deliver

        async def dead_lettered() -> bool:
            info = await js.stream_info(DLQ_STREAM)
            return info.state.messages >= 1

        await wait_until(dead_lettered, timeout_s=60, what="the poison event in AGORA_DLQ")
        await wait_until(lambda: _at_least(nc, 2 * backlog), timeout_s=120, what="phase B to end")
        letter = decode_dead_letter(
            (await js.get_last_msg(DLQ_STREAM, dlq_subject("planner"))).data
        )
        await projector_caught_up(nc, timeout_s=60)
        await platform.stop()

        verdict = await collect(
            "6 poison event", nc, [*normal_ids, *poisoned_ids], dead_lettered=[POISON]
        )
        await check_projection(verdict, nc, database_path(settings), tmp_path / "rebuilt.duckdb")
        ratio = during / normal if normal else 0.0
        verdict.counts.update(
            {
                "normal_per_window": normal,
                "poisoned_per_window": during,
                "handler_runs": FailsForThePoisonGoal.calls,
            }
        )
        report(verdict.line() + f" throughput_ratio={ratio:.2f} dlq_deliveries={letter.deliveries}")
        assert verdict.ok, verdict.explain()
        assert letter.reason == "max_deliveries"
        assert letter.deliveries == max_deliver
        assert "planning this goal always fails" in letter.error
        assert letter.subject == f"agora.events.{POISON}.context_provided"
        assert FailsForThePoisonGoal.calls == max_deliver
        assert still_retrying, "the window ended after the poison event was dead-lettered"
        assert ratio >= 0.9, f"{during} goals/window with the poison event vs {normal} without"
    finally:
        await platform.stop()
        await nc.close()
        server.stop()


async def _at_least(nc: NatsClient, n: int) -> bool:
    return await count_finished(nc) >= n
