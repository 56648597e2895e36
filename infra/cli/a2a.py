"""``agora a2a``: agora as an A2A server (JSON-RPC over HTTP, A2A 1.0)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra.cli.common import app, connect, endpoint_token, err, load_settings, run

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from infra.platform.bearer import BearerToken
    from infra.settings import Settings

__all__ = ["DEFAULT_PORT", "a2a_server"]

DEFAULT_PORT = 8766


@app.command("a2a")
def a2a_server(
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="port to bind (0: any free port)")] = DEFAULT_PORT,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="file holding the bearer token clients must send (or AGORA_A2A_TOKEN_FILE, "
            "AGORA_A2A_TOKEN)",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="base URL clients reach (e.g. a TLS proxy's), named in the agent card "
            "(or AGORA_A2A_PUBLIC_URL)",
        ),
    ] = None,
) -> None:
    """Serve agora to A2A clients, as the client identity: a message starts a goal (the
    task), which GetTask, CancelTask and streams follow. The agent card is at
    /.well-known/agent-card.json, JSON-RPC at /a2a, where every request needs the bearer
    token."""
    from infra.a2a_server.auth import A2A_TOKEN

    settings = load_settings()
    token = endpoint_token(
        A2A_TOKEN,
        token=settings.endpoints.a2a_token,
        token_file=token_file or settings.endpoints.a2a_token_file,
        host=host,
        generated_path=settings.data_dir / "a2a" / "token",
    )
    public_url = public_url or settings.endpoints.a2a_public_url
    run(_serve(settings, host=host, port=port, token=token, public_url=public_url))


async def _serve(
    settings: Settings, *, host: str, port: int, token: BearerToken, public_url: str | None
) -> None:
    from infra.a2a_server.card import agent_card
    from infra.a2a_server.handler import AgoraRequestHandler
    from infra.a2a_server.http import A2AEndpoint, build_app, serve_http
    from infra.clients.goals import AgoraClient
    from infra.logging import redact_stdlib_loggers

    client = AgoraClient(await connect(settings, "agora-a2a"))
    handler = AgoraRequestHandler(client)
    # The SDK and uvicorn log through the standard library: the token stays out there too.
    redact_stdlib_loggers("a2a", "uvicorn", "starlette", "sse_starlette")

    def make_app(endpoint: A2AEndpoint) -> Starlette:
        card = agent_card(rpc_url=endpoint.rpc_url, version=_agora_version())
        return build_app(handler, card, token=token.value)

    def ready(endpoint: A2AEndpoint) -> None:
        err.print(
            f"agora a2a: A2A 1.0 JSON-RPC on {endpoint.rpc_url}, agent card at "
            f"{endpoint.base}/.well-known/agent-card.json (bearer token from {token.source})"
        )

    try:
        await serve_http(make_app, host=host, port=port, public_url=public_url, on_ready=ready)
    finally:
        await client.close()


def _agora_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("agora")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return ""
