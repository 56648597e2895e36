"""agora's A2A endpoint over HTTP: the SDK's agent card and JSON-RPC routes in one Starlette
app, every JSON-RPC request behind the bearer token, served by uvicorn on a socket bound
before anything is announced (the printed URL already accepts connections)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from a2a.server.request_handlers import RequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.types import AgentCard
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from starlette.applications import Starlette
from starlette.middleware import Middleware

from infra.platform.asgi import BearerRequired, serve_asgi
from infra.platform.sockets import base_url, listening_socket

__all__ = ["CARD_PATH", "RPC_PATH", "A2AEndpoint", "build_app", "serve_http"]

RPC_PATH = "/a2a"
CARD_PATH = AGENT_CARD_WELL_KNOWN_PATH
# Open SSE streams end this long after Ctrl-C / SIGTERM; the goals they follow run on.
_SHUTDOWN_GRACE_S = 3.0


@dataclass(frozen=True, slots=True)
class A2AEndpoint:
    """Where the endpoint listens (``base``) and what its card names (``rpc_url``)."""

    base: str
    rpc_url: str


def build_app(handler: RequestHandler, card: AgentCard, *, token: str) -> Starlette:
    """The card at ``/.well-known/agent-card.json`` (public: it holds no secret) and JSON-RPC
    at ``/a2a`` (bearer token)."""
    routes = [
        *create_agent_card_routes(card, card_url=CARD_PATH),
        *create_jsonrpc_routes(handler, RPC_PATH, shutdown_grace_period=_SHUTDOWN_GRACE_S / 2),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(BearerRequired, token=token, open_paths=(CARD_PATH,))]
    )


async def serve_http(
    make_app: Callable[[A2AEndpoint], Starlette],
    *,
    host: str,
    port: int,
    public_url: str | None,
    on_ready: Callable[[A2AEndpoint], None],
) -> None:
    """Serve until uvicorn is told to stop (SIGINT, SIGTERM). ``port`` 0: any free port.
    ``public_url``: the base URL clients reach (a reverse proxy's), else the bound one."""
    sock = listening_socket(host, port)
    base = base_url(sock)
    endpoint = A2AEndpoint(base=base, rpc_url=(public_url or base).rstrip("/") + RPC_PATH)
    app = make_app(endpoint)
    on_ready(endpoint)
    await serve_asgi(app, sock, shutdown_grace_s=_SHUTDOWN_GRACE_S)
