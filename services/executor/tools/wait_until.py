"""Waits in process until a point in time: only for a wait the executor's timers threshold
keeps off the durable path (a short one, or one whose time has passed: done at once)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from events.instants import utc_text
from events.tools import WaitUntilArgs
from services.executor.tools.context import ToolContext

__all__ = ["reached", "run"]


def reached(moment: datetime) -> str:
    """The output of a wait for ``moment``, in process or on a durable timer alike."""
    return f"waited until {utc_text(moment)}"


async def run(args: WaitUntilArgs, _ctx: ToolContext) -> str:
    moment = args.moment
    remaining = (moment - datetime.now(UTC)).total_seconds()
    if remaining > 0:
        await asyncio.sleep(remaining)
    return reached(moment)
