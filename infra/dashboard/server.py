"""Serving the dashboard: uvicorn on a socket bound before the URL is announced (and written
to ``<data dir>/ui/url``, so ``agora up``'s dashboard on any free port can be found)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from infra.platform.sockets import base_url, listening_socket

__all__ = ["serve_dashboard", "serving_on_a_free_port", "url_file"]

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


@contextlib.asynccontextmanager
async def serving_on_a_free_port(app: ASGIApp, *, data_dir: Path) -> AsyncIterator[str]:
    """``app`` served on a free loopback port while the block runs (tests, benchmarks); yields
    its base URL."""
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    serving = asyncio.ensure_future(
        serve_dashboard(app, host="127.0.0.1", port=0, data_dir=data_dir, on_ready=ready.set_result)
    )
    try:
        yield await asyncio.wait_for(ready, 30)
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
