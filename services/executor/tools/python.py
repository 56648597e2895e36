"""Runs a Python program in the sandbox and returns what it printed.

The program gets the standard library only, a fresh empty directory, no environment, no
network and the limits of ``services/executor/sandbox.py``; it cannot see the workspace or
agora's data directory. A program that fails (an exception, a limit, the wall-clock timeout)
is a non-transient error: running it again would fail the same way.
"""

from __future__ import annotations

from events.errors import ToolError
from events.tools import PythonArgs
from services.executor.tools.context import ToolContext

__all__ = ["run"]


async def run(args: PythonArgs, ctx: ToolContext) -> str:
    if ctx.sandbox is None:
        raise ToolError("the python tool needs a sandbox, and this executor has none configured")
    result = await ctx.sandbox.run_python(args.code, stdin=args.stdin)
    if not result.ok:
        output = f"\nstdout before it stopped:\n{result.stdout}" if result.stdout else ""
        raise ToolError(f"the program failed: {result.describe_failure()}{output}")
    return result.stdout
