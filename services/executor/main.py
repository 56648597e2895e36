"""Composition root of the executor: tools, their HTTP client and workspace, the task handler."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from nats.js.api import PubAck

from events.catalog import TaskScheduled
from events.codec import decode_event
from events.model import Event
from events.subjects import EVENTS_STREAM
from infra.consume import Delivery
from infra.goal_history import GoalHistory
from infra.runner import ServiceContext, ServiceParts, Subscription
from services.executor.handler import execute_task
from services.executor.registry import ToolRegistry
from services.executor.runner import ToolRunner
from services.executor.tools.context import ToolContext

__all__ = ["build"]


def build(ctx: ServiceContext) -> ServiceParts:
    workspace = ctx.settings.workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    http = httpx.AsyncClient(follow_redirects=True, timeout=httpx.Timeout(30.0))
    runner = ToolRunner(ToolRegistry.builtin(), ToolContext(workspace=workspace, http=http))

    history = GoalHistory(ctx.nc)

    async def publish(events: Sequence[Event], *, expected_last_seq: int) -> list[PubAck]:
        return await ctx.publish(events, expected_last_seq=expected_last_seq)

    async def run_task(delivery: Delivery) -> None:
        task = decode_event(delivery.data)
        if isinstance(task, TaskScheduled):
            await execute_task(
                task,
                task_seq=delivery.stream_seq,
                redelivered=delivery.redelivered,
                runner=runner,
                log=history,
                publish=publish,
                now=ctx.now,
                producer=ctx.producer,
            )

    return ServiceParts(
        [Subscription(ctx.spec(EVENTS_STREAM), run_task, ctx.settings.executor_concurrency)],
        on_stop=http.aclose,
    )
