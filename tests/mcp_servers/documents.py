"""An MCP server over stdio (the official SDK's MCPServer) that serves text documents.

``fetch(name)`` returns ``$MCP_TEST_DIR/<name>.txt`` as it is: the injection-safety tests put
hostile text there, so it reaches agora as an MCP tool's output.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer

DIR = Path(os.environ["MCP_TEST_DIR"])

server = MCPServer("documents")


@server.tool()
def fetch(name: str) -> str:
    """The text of the document ``name``."""
    with (DIR / "calls.log").open("a") as log:
        log.write(f"documents fetch {name}\n")
    return (DIR / f"{name}.txt").read_text(encoding="utf-8")


server.run()
