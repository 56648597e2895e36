"""Built-in tool implementations. Each is ``async def run(args, ctx) -> str``."""

from services.executor.tools.context import ToolContext, ToolImplementation

__all__ = ["ToolContext", "ToolImplementation"]
