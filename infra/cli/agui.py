"""``agora agui``: agora as an AG-UI agent (a run per goal, its events streamed over SSE)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra.cli.common import app, connect, endpoint_token, err, load_settings, run

if TYPE_CHECKING:
    from infra.platform.bearer import BearerToken
    from infra.settings import Settings

__all__ = ["DEFAULT_PORT", "agui_server"]

DEFAULT_PORT = 8767
# Open streams end this long after Ctrl-C / SIGTERM; the goals they follow run on.
_SHUTDOWN_GRACE_S = 3.0


@app.command("agui")
def agui_server(
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="port to bind (0: any free port)")] = DEFAULT_PORT,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="file holding the bearer token clients must send (or AGORA_AGUI_TOKEN_FILE, "
            "AGORA_AGUI_TOKEN)",
        ),
    ] = None,
) -> None:
    """Serve agora to AG-UI front ends, as the client identity: POST a RunAgentInput to
    /agui and the goal it starts streams back as AG-UI events (server-sent events). Every
    request needs the bearer token."""
    from infra.agui_server.auth import AGUI_TOKEN

    settings = load_settings()
    token = endpoint_token(
        AGUI_TOKEN,
        token=settings.endpoints.agui_token,
        token_file=token_file or settings.endpoints.agui_token_file,
        host=host,
        generated_path=settings.data_dir / "agui" / "token",
    )
    run(_serve(settings, host=host, port=port, token=token))


async def _serve(settings: Settings, *, host: str, port: int, token: BearerToken) -> None:
    from infra.agui_server.http import AGUI_PATH, build_app
    from infra.clients.goals import AgoraClient
    from infra.logging import redact_stdlib_loggers
    from infra.platform.asgi import serve_asgi
    from infra.platform.sockets import base_url, listening_socket

    client = AgoraClient(await connect(settings, "agora-agui"))
    redact_stdlib_loggers("uvicorn", "starlette")
    try:
        sock = listening_socket(host, port)
        err.print(
            f"agora agui: AG-UI runs at POST {base_url(sock)}{AGUI_PATH} "
            f"(bearer token from {token.source})"
        )
        app_ = build_app(client, token=token.value)
        await serve_asgi(app_, sock, shutdown_grace_s=_SHUTDOWN_GRACE_S)
    finally:
        await client.close()
