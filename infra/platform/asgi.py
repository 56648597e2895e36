"""What agora's HTTP endpoints share: every request behind the bearer token (but the paths
that hold no secret), and uvicorn serving an app on a socket bound before anything is
announced (the printed URL already accepts connections)."""

from __future__ import annotations

import socket
from collections.abc import Collection

import uvicorn
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from infra.platform.bearer import tokens_match

__all__ = ["BearerRequired", "serve_asgi"]


class BearerRequired:
    """Every HTTP request but those to ``open_paths`` needs ``Authorization: Bearer <token>``:
    else 401 and nothing runs. Plain ASGI, so SSE streams pass through untouched."""

    def __init__(self, app: ASGIApp, *, token: str, open_paths: Collection[str] = ()) -> None:
        self._app = app
        self._token = token
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self._open:
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


async def serve_asgi(app: ASGIApp, sock: socket.socket, *, shutdown_grace_s: float) -> None:
    """Serve ``app`` on ``sock`` until uvicorn is told to stop (SIGINT, SIGTERM); open
    streams end ``shutdown_grace_s`` after that."""
    # No access log: agora's own logs say what happened; a request line is not worth keeping.
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=int(shutdown_grace_s),
    )
    await uvicorn.Server(config).serve(sockets=[sock])
