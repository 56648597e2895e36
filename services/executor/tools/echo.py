"""Returns its text unchanged: the simplest tool, handy for plans and tests."""

from __future__ import annotations

from events.tools import EchoArgs
from services.executor.tools.context import ToolContext

__all__ = ["run"]


async def run(args: EchoArgs, _ctx: ToolContext) -> str:
    return args.text
