"""agora's A2A endpoint over HTTP: the SDK's agent card and JSON-RPC routes in one Starlette
app, every JSON-RPC request behind the bearer token, served by uvicorn on a socket bound
before anything is announced (the printed URL already accepts connections)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from a2a.server.request_handlers import RequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.types import AgentCard
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from infra.platform.bearer import tokens_match
from infra.platform.sockets import base_url, listening_socket

__all__ = ["CARD_PATH", "RPC_PATH", "A2AEndpoint", "BearerRequired", "build_app", "serve_http"]

RPC_PATH = "/a2a"
CARD_PATH = AGENT_CARD_WELL_KNOWN_PATH
# Open SSE streams end this long after Ctrl-C / SIGTERM; the goals they follow run on.
_SHUTDOWN_GRACE_S = 3.0


@dataclass(frozen=True, slots=True)
class A2AEndpoint:
    """Where the endpoint listens (``base``) and what its card names (``rpc_url``)."""

    base: str
    rpc_url: str


class BearerRequired:
    """Every request but the agent card's needs ``Authorization: Bearer <token>``: else 401
    and nothing runs. Plain ASGI, so SSE streams pass through untouched."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self._app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != CARD_PATH:
            scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not tokens_match(given.strip(), self._token):
                refused = JSONResponse(
                    {"error": "unauthorized: send Authorization: Bearer <token>"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="agora"'},
                )
                await refused(scope, receive, send)
                return
        await self._app(scope, receive, send)


def build_app(handler: RequestHandler, card: AgentCard, *, token: str) -> Starlette:
    """The card at ``/.well-known/agent-card.json`` (public: it holds no secret) and JSON-RPC
    at ``/a2a`` (bearer token)."""
    routes = [
        *create_agent_card_routes(card, card_url=CARD_PATH),
        *create_jsonrpc_routes(handler, RPC_PATH, shutdown_grace_period=_SHUTDOWN_GRACE_S / 2),
    ]
    return Starlette(routes=routes, middleware=[Middleware(BearerRequired, token=token)])


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
    # No access log: agora's own logs say what happened; a request line is not worth keeping.
    config = uvicorn.Config(
        make_app(endpoint),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=int(_SHUTDOWN_GRACE_S),
    )
    on_ready(endpoint)
    await uvicorn.Server(config).serve(sockets=[sock])
