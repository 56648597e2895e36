"""Waits without blocking the event loop; the runner's timeout applies as to any tool."""

from __future__ import annotations

import asyncio

from events.tools import SleepArgs
from services.executor.tools.context import ToolContext

__all__ = ["run"]


async def run(args: SleepArgs, _ctx: ToolContext) -> str:
    await asyncio.sleep(args.seconds)
    return f"slept {args.seconds:g}s"
