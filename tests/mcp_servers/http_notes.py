"""A Streamable HTTP MCP server (the official SDK's MCPServer) that wants a bearer token.

Usage: ``python -m tests.mcp_servers.http_notes PORT``; the token is ``MCP_TEST_TOKEN``. Every
request without ``Authorization: Bearer <token>`` gets 401. Calls are appended to
``$MCP_TEST_DIR/calls.log``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

DIR = Path(os.environ["MCP_TEST_DIR"])
TOKEN = os.environ["MCP_TEST_TOKEN"]

server = MCPServer("notes")


class Lookup(BaseModel):
    word: str
    length: int
    vowels: int


@server.tool()
def lookup(word: str) -> Lookup:
    """Facts about a word: its length and how many vowels it has."""
    with (DIR / "calls.log").open("a") as log:
        log.write(f"notes lookup {word}\n")
    return Lookup(word=word, length=len(word), vowels=sum(c in "aeiou" for c in word.lower()))


def require_token(app: Any) -> Any:
    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers", []))
            if headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(
        require_token(server.streamable_http_app()),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
