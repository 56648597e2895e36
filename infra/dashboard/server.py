"""Serving the dashboard: uvicorn on a socket bound before the URL is announced (and written
to ``<data dir>/ui/url``, so ``agora up``'s dashboard on any free port can be found)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from infra.platform.sockets import base_url, listening_socket

__all__ = ["serve_dashboard", "url_file"]

# Open SSE streams end this long after Ctrl-C / SIGTERM.
_SHUTDOWN_GRACE_S = 2


def url_file(data_dir: Path) -> Path:
    return data_dir / "ui" / "url"


async def serve_dashboard(
    app: ASGIApp, *, host: str, port: int, data_dir: Path, on_ready: Callable[[str], None]
) -> None:
    """Serve until uvicorn is told to stop (SIGINT, SIGTERM). ``port`` 0: any free port."""
    sock = listening_socket(host, port)
    url = base_url(sock)
    where = url_file(data_dir)
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(url + "\n", encoding="utf-8")
    # No access log: a request line is not worth keeping.
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=_SHUTDOWN_GRACE_S,
    )
    on_ready(url)
    try:
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        sock.close()  # uvicorn leaves a socket it was handed open
        with contextlib.suppress(OSError):
            if where.read_text(encoding="utf-8").strip() == url:
                where.unlink()
