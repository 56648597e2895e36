"""agora's MCP server over Streamable HTTP: the SDK's app, served by uvicorn on a socket
bound before anything is announced, so the printed URL is already accepting connections."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn
from mcp.server.mcpserver import MCPServer

from infra.platform.sockets import base_url, listening_socket

__all__ = ["MCP_PATH", "serve_http"]

MCP_PATH = "/mcp"


def endpoint_url(sock: socket.socket) -> str:
    return base_url(sock) + MCP_PATH


async def serve_http(
    server: MCPServer, *, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Serve until uvicorn is told to stop (SIGINT, SIGTERM). ``port`` 0: any free port."""
    sock = listening_socket(host, port)
    app = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    # No access log: agora's own logs say what happened; a request line is not worth keeping.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    on_ready(endpoint_url(sock))
    await uvicorn.Server(config).serve(sockets=[sock])
