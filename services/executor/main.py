"""Composition root of the executor: tools, their HTTP client and workspace, the task handlers
(plain tool tasks, and ReAct tasks driven by the configured language model)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from events.catalog import TaskScheduled
from events.codec import decode_event
from events.model import Event
from events.subjects import EVENTS_STREAM
from events.tools import REACT_TOOL
from infra.consume import Delivery
from infra.runner import ServiceContext, ServiceParts, Subscription
from services.executor.handler import execute_task
from services.executor.react import ReactConfig
from services.executor.react_handler import execute_react
from services.executor.registry import ToolRegistry
from services.executor.runner import ToolRunner
from services.executor.tools.context import ToolContext
from services.llm.templates import load_prompt

__all__ = ["build"]


def build(ctx: ServiceContext) -> ServiceParts:
    workspace = ctx.settings.workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    http = httpx.AsyncClient(follow_redirects=True, timeout=httpx.Timeout(30.0))
    registry = ToolRegistry.builtin()
    runner = ToolRunner(registry, ToolContext(workspace=workspace, http=http))
    react_config = ReactConfig(
        tools=registry.specs(),
        prompt=load_prompt("executor", "react", 1),
        max_steps=ctx.settings.react_max_steps,
    )

    async def publish(events: Sequence[Event]) -> None:
        await ctx.publish(events)

    async def run_task(delivery: Delivery) -> None:
        task = decode_event(delivery.data)
        if isinstance(task, TaskScheduled) and task.tool == REACT_TOOL:
            await execute_react(
                task,
                redelivered=delivery.redelivered,
                config=react_config,
                runner=runner,
                llm=ctx.llm,
                log=ctx.goal_log,
                publish=publish,
                now=ctx.now,
                producer=ctx.producer,
            )
        elif isinstance(task, TaskScheduled):
            await execute_task(
                task,
                redelivered=delivery.redelivered,
                runner=runner,
                log=ctx.goal_log,
                publish=publish,
                now=ctx.now,
                producer=ctx.producer,
            )

    return ServiceParts(
        [Subscription(ctx.spec(EVENTS_STREAM), run_task, ctx.settings.executor_concurrency)],
        on_stop=http.aclose,
    )
