"""http_get against a real local HTTP server: 5xx and network trouble are transient, 4xx not."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from events.errors import ToolError
from events.tools import HttpGetArgs
from services.executor.netguard import AddressPolicy, guarded_http_client
from services.executor.tools import http_get
from services.executor.tools.context import ToolContext

_ROUTES: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "/ok": (200, "hello from the server ✓".encode(), {"Content-Type": "text/plain; charset=utf-8"}),
    "/latin1": (200, "café".encode("latin-1"), {"Content-Type": "text/plain; charset=latin-1"}),
    "/missing": (404, b"not here", {}),
    "/boom": (500, b"internal error", {}),
    "/unavailable": (503, b"try later", {}),
    "/moved": (302, b"", {"Location": "/ok"}),
    "/huge": (200, b"x" * (http_get.MAX_BODY_BYTES + 10_000), {}),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body, headers = _ROUTES.get(self.path, (404, b"no route", {}))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client stops reading a capped body early: expected for /huge.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ToolContext]:
    # The executor's guarded client: loopback is refused unless allow-listed, as here.
    async with guarded_http_client(AddressPolicy.parse(["127.0.0.1/32"]), timeout_s=0.5) as http:
        yield ToolContext(workspace=tmp_path, http=http)


async def test_200_returns_the_body_text(server_url: str, ctx: ToolContext) -> None:
    output = await http_get.run(HttpGetArgs(url=f"{server_url}/ok"), ctx)
    assert output == "hello from the server ✓"


async def test_body_is_decoded_with_the_declared_charset(server_url: str, ctx: ToolContext) -> None:
    assert await http_get.run(HttpGetArgs(url=f"{server_url}/latin1"), ctx) == "café"


async def test_redirects_are_followed(server_url: str, ctx: ToolContext) -> None:
    output = await http_get.run(HttpGetArgs(url=f"{server_url}/moved"), ctx)
    assert output == "hello from the server ✓"


async def test_404_is_a_permanent_error(server_url: str, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="HTTP 404") as caught:
        await http_get.run(HttpGetArgs(url=f"{server_url}/missing"), ctx)
    assert caught.value.transient is False


@pytest.mark.parametrize(("path", "status"), [("/boom", 500), ("/unavailable", 503)])
async def test_5xx_is_a_transient_error(
    server_url: str, ctx: ToolContext, path: str, status: int
) -> None:
    with pytest.raises(ToolError, match=f"HTTP {status}") as caught:
        await http_get.run(HttpGetArgs(url=f"{server_url}{path}"), ctx)
    assert caught.value.transient is True


async def test_huge_bodies_are_cut_and_marked(server_url: str, ctx: ToolContext) -> None:
    output = await http_get.run(HttpGetArgs(url=f"{server_url}/huge"), ctx)
    assert output.startswith("x" * 1000)
    assert output.endswith(f"[body truncated after {http_get.MAX_BODY_BYTES} bytes]")
    assert output.count("x") == http_get.MAX_BODY_BYTES


async def test_connection_refused_is_transient(ctx: ToolContext) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    # Nothing listens on free_port any more.
    with pytest.raises(ToolError, match="ConnectError") as caught:
        await http_get.run(HttpGetArgs(url=f"http://127.0.0.1:{free_port}/"), ctx)
    assert caught.value.transient is True


async def test_a_server_that_never_answers_times_out_transiently(ctx: ToolContext) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections queue in the backlog; nobody ever responds
        port = silent.getsockname()[1]
        with pytest.raises(ToolError, match="timed out") as caught:
            await http_get.run(HttpGetArgs(url=f"http://127.0.0.1:{port}/"), ctx)
    assert caught.value.transient is True
