"""``agora mcp``: agora as an MCP server, over stdio (default) or Streamable HTTP (--http)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra.cli.common import app, connect, endpoint_token, err, load_settings, run

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = ["DEFAULT_PORT", "mcp_server"]

DEFAULT_PORT = 8765


@app.command("mcp")
def mcp_server(
    http: Annotated[
        bool, typer.Option("--http", help="serve Streamable HTTP instead of stdio")
    ] = False,
    host: Annotated[str, typer.Option(help="address --http binds (loopback by default)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="port --http binds (0: any free port)")] = DEFAULT_PORT,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="file holding the bearer token HTTP clients must send (or AGORA_MCP_TOKEN_FILE, "
            "AGORA_MCP_TOKEN)",
        ),
    ] = None,
) -> None:
    """Serve agora's tools (submit_goal, wait_goal, query, …) to MCP clients, as the client
    identity. Over stdio for a local host application; --http for Streamable HTTP at /mcp,
    where every request needs the bearer token."""
    settings = load_settings()
    token = None
    if http:
        from infra.mcp_server.auth import MCP_TOKEN

        token = endpoint_token(
            MCP_TOKEN,
            token=settings.endpoints.mcp_token,
            token_file=token_file or settings.endpoints.mcp_token_file,
            host=host,
            generated_path=settings.data_dir / "mcp" / "token",
        )
    run(_serve(settings, host=host, port=port, token=token))


async def _serve(settings: Settings, *, host: str, port: int, token: BearerToken | None) -> None:
    from infra.clients.goals import AgoraClient
    from infra.logging import redact_stdlib_loggers
    from infra.mcp_server.auth import StaticTokenVerifier
    from infra.mcp_server.http import serve_http
    from infra.mcp_server.server import build_server

    # token None: stdio (a host application started this process; its pipes are the auth).
    client = AgoraClient(await connect(settings, "agora-mcp"))
    try:
        if token is None:
            await build_server(client).run_stdio_async()
            return
        server = build_server(client, token_verifier=StaticTokenVerifier(token.value))
        # The SDK and uvicorn log through the standard library: the token stays out there too.
        redact_stdlib_loggers("mcp", "uvicorn", "starlette")

        def ready(url: str) -> None:
            err.print(f"agora mcp: Streamable HTTP on {url} (bearer token from {token.source})")

        await serve_http(server, host=host, port=port, on_ready=ready)
    finally:
        await client.close()


if TYPE_CHECKING:
    from infra.mcp_server.auth import BearerToken
