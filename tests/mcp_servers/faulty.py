"""An MCP server over stdio (the official SDK's MCPServer) with tools that fail on purpose.

``MCP_TEST_DIR``: where it appends one line per call to ``calls.log``, ``<name> <tool> <pid>``
(so a test can count calls, and kill the process that is serving one).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import anyio
from mcp.server.mcpserver import Context, MCPServer

NAME = sys.argv[1] if len(sys.argv) > 1 else "faulty"
DIR = Path(os.environ["MCP_TEST_DIR"])

server = MCPServer(NAME)


def _record(tool: str) -> None:
    with (DIR / "calls.log").open("a") as log:
        log.write(f"{NAME} {tool} {os.getpid()}\n")


@server.tool()
async def slow(seconds: float) -> str:
    """Wait ``seconds``, then say so."""
    _record("slow")
    await anyio.sleep(seconds)
    return f"slept {seconds}s"


@server.tool()
async def hang() -> str:
    """Never answer."""
    _record("hang")
    await anyio.sleep_forever()
    return "unreachable"


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    _record("shout")
    return text.upper()


@server.tool()
async def retire(tool: str, ctx: Context) -> str:
    """Stop offering ``tool`` (the server's tool set changes), and say so to the client."""
    _record("retire")
    server.remove_tool(tool)
    with contextlib.suppress(Exception):
        await ctx.session.send_tool_list_changed()
    return f"{tool} retired"


server.run()
