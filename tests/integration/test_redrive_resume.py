"""A redrive long after the duplicate window: the handler resumes from the log, doubles nothing.

The executor's bug here strikes after the tool ran: its outcome cannot be published. So the
log already holds the task's tool calls when the task is dead-lettered. The
redrive comes after the stream's duplicate window has expired, when re-publishing any of
those events would store it a second time: the executor must treat the redrive as a
redelivery, read the log and go on from where the task stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import GoalCompleted, TaskCompleted, ToolCalled
from events.model import Event
from events.subjects import DLQ_STREAM
from infra.bus.publisher import EventPublisher
from infra.clients.dead_letters import list_dead_letters, redrive
from infra.clients.goals import AgoraClient
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import all_events, duplicates, wait_until

GOAL = "g-outcome-lost"
WINDOW_S = 1.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, duplicate_window_s=WINDOW_S, max_deliver=2)


class OutcomeLostPublisher(EventPublisher):
    async def __call__(  # type: ignore[override]
        self,
        events: Sequence[Event],
        *,
        new_goal: bool = False,
        expected_last_seq: int | None = None,
    ) -> list:  # type: ignore[type-arg]
        if any(isinstance(e, TaskCompleted) and e.goal_id == GOAL for e in events):
            raise RuntimeError("bug: the tool's outcome cannot be published")
        return await super().__call__(
            events, new_goal=new_goal, expected_last_seq=expected_last_seq
        )


async def _window_expired(nc: NatsClient) -> None:
    """Wait until a message id published now would no longer be a duplicate."""
    js = nc.jetstream()
    probe = await js.publish("agora.dlq.window-probe", b"", headers={"Nats-Msg-Id": "probe"})
    seqs = [probe.seq]

    async def expired() -> bool:
        again = await js.publish("agora.dlq.window-probe", b"", headers={"Nats-Msg-Id": "probe"})
        if not again.duplicate:
            seqs.append(again.seq)
        return not again.duplicate

    await wait_until(expired, timeout_s=WINDOW_S + 10, what="the duplicate window to expire")
    for seq in seqs:
        await js.delete_msg(DLQ_STREAM, seq)


async def test_a_redrive_after_the_window_resumes_the_task_from_the_log(
    nc: NatsClient, client: AgoraClient, settings: Settings
) -> None:
    platform = InProcessPlatform(settings)
    platform.start("planner", "memory", "evaluator")
    platform.start("executor", publisher=OutcomeLostPublisher)
    try:
        await client.submit(
            {
                "goal_id": GOAL,
                "text": "pause",
                # write_file has side effects: each call is recorded before it runs (a tool
                # without would not be, as its outcome records it), so the log holds one
                # attempt per delivery.
                "steps": [{"tool": "write_file", "args": {"path": "redrive.txt", "content": "x"}}],
            }
        )

        async def dead_lettered() -> bool:
            return len(await list_dead_letters(nc)) == 1

        await wait_until(dead_lettered, timeout_s=20, what="the task dead-lettered")
        [record] = await list_dead_letters(nc)
        before = [e for e in await all_events(nc) if e.goal_id == GOAL]
        assert sum(isinstance(e, ToolCalled) for e in before) == 2  # one per delivery
        await platform.stop("executor")
        platform.start("executor")  # the fix
        await _window_expired(nc)

        await redrive(nc, record.seq)
        outcome = await client.wait_for_outcome(GOAL, timeout_s=30)
    finally:
        await platform.stop()

    assert isinstance(outcome[-1], GoalCompleted), outcome[-1]
    log = await all_events(nc)
    assert duplicates(log) == {}
    goal_log = [e for e in log if e.goal_id == GOAL]
    assert sum(isinstance(e, TaskCompleted) for e in goal_log) == 1
    # The redrive went on with a third attempt; the first two stay as they were recorded.
    assert [e.attempt for e in goal_log if isinstance(e, ToolCalled)] == [1, 2, 3]
