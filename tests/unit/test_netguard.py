"""http_get cannot reach local addresses (acceptance 3 of issue 8), after DNS and on redirects."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from events.errors import ConfigurationError, ToolError
from events.tools import HttpGetArgs
from infra.settings import Settings
from services.executor.netguard import AddressPolicy, guarded_http_client
from services.executor.tools import http_get
from services.executor.tools.context import ToolContext


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = self.server.server_address[1]
        if self.path == "/to-loopback-ip":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{port}/secret")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"local secret"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def _get(url: str, tmp_path: Path, *allow: str) -> str:
    async with guarded_http_client(AddressPolicy.parse(allow), timeout_s=2) as http:
        return await http_get.run(HttpGetArgs(url=url), ToolContext(tmp_path, http))


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "127.1.2.3"],
)
async def test_loopback_is_refused_with_a_clear_error(host: str, port: int, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"address.*; http_get only reaches public") as refused:
        await _get(f"http://{host}:{port}/secret", tmp_path)
    assert not refused.value.transient


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.0.1/",
        "http://224.0.0.1/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
    ],
)
async def test_private_link_local_and_multicast_are_refused_before_connecting(
    url: str, tmp_path: Path
) -> None:
    with pytest.raises(ToolError, match="http_get only reaches public"):
        await _get(url, tmp_path)


async def test_an_allow_listed_network_or_host_is_reachable(port: int, tmp_path: Path) -> None:
    assert await _get(f"http://127.0.0.1:{port}/x", tmp_path, "127.0.0.0/8") == "local secret"
    assert await _get(f"http://localhost:{port}/x", tmp_path, "localhost") == "local secret"


async def test_a_redirect_to_a_local_address_is_refused(port: int, tmp_path: Path) -> None:
    # localhost is allowed by name; where it redirects (127.0.0.1 by address) is not.
    with pytest.raises(ToolError, match=r"127\.0\.0\.1 resolves to 127\.0\.0\.1, a loopback"):
        await _get(f"http://localhost:{port}/to-loopback-ip", tmp_path, "localhost")


def test_policy_decisions() -> None:
    policy = AddressPolicy.parse(["10.0.0.0/8", "Internal.Example."])
    assert policy.refusal("a", ipaddress.ip_address("10.9.9.9")) is None
    assert policy.refusal("internal.example", ipaddress.ip_address("192.168.1.1")) is None
    assert policy.refusal("a", ipaddress.ip_address("93.184.216.34")) is None
    assert "private" in (policy.refusal("a", ipaddress.ip_address("192.168.1.1")) or "")
    assert "link-local" in (policy.refusal("a", ipaddress.ip_address("169.254.169.254")) or "")


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "a..b", "host/path"])
def test_bad_allow_list_entries_are_configuration_errors(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="AGORA_HTTP_ALLOW"):
        AddressPolicy.parse([entry])


def test_the_allow_list_comes_from_the_environment() -> None:
    settings = Settings.from_env({"AGORA_HTTP_ALLOW": "127.0.0.1/32, localhost"})
    assert settings.http_allow == ("127.0.0.1/32", "localhost")
    assert Settings.from_env(settings.to_env()).http_allow == settings.http_allow


@pytest.mark.parametrize(
    ("literal", "kind"),
    [
        ("::127.0.0.1", "loopback address (127.0.0.1, embedded in IPv4-compatible form)"),
        ("::ffff:0:7f00:1", "loopback address (127.0.0.1, embedded in IPv4-translated form)"),
        ("64:ff9b::7f00:1", "loopback address (127.0.0.1, embedded in NAT64 form)"),
        ("64:ff9b::a9fe:a9fe", "link-local address (169.254.169.254, embedded in NAT64 form)"),
        ("64:ff9b:1:7f00:0:100::", "loopback address (127.0.0.1, embedded in NAT64 form)"),
        ("2002:7f00:1::1", "loopback address (127.0.0.1, embedded in 6to4 form)"),
        ("2002:c0a8:101::1", "private address (192.168.1.1, embedded in 6to4 form)"),
        ("::ffff:10.0.0.1", "private address (10.0.0.1, embedded in IPv4-mapped form)"),
        # Teredo: the client address is stored inverted; 0x80ff:fffe -> 127.0.0.1.
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback address (127.0.0.1, embedded in"),
        ("::8.8.8.8", "deprecated IPv4-compatible address (not routed)"),
        ("fec0::1", "site-local address"),
        ("3fff::1", "documentation address"),
    ],
)
def test_ipv4_inside_ipv6_is_judged_by_the_ipv4_address(literal: str, kind: str) -> None:
    refusal = AddressPolicy().refusal("h", ipaddress.ip_address(literal))
    assert refusal is not None
    assert f"a {kind}" in refusal


@pytest.mark.parametrize(
    "literal", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111"]
)
def test_public_ipv4_inside_ipv6_and_public_ipv6_pass(literal: str) -> None:
    assert AddressPolicy().refusal("h", ipaddress.ip_address(literal)) is None


def test_an_allow_listed_ipv4_network_covers_its_embedded_forms() -> None:
    policy = AddressPolicy.parse(["127.0.0.0/8"])
    assert policy.refusal("h", ipaddress.ip_address("64:ff9b::7f00:1")) is None
    assert policy.refusal("h", ipaddress.ip_address("64:ff9b::a00:1")) is not None


@pytest.mark.parametrize(
    "host", ["[::127.0.0.1]", "[::ffff:0:7f00:1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]"]
)
async def test_embedded_loopback_urls_are_refused_before_connecting(
    host: str, port: int, tmp_path: Path
) -> None:
    refused = r"127\.0\.0\.1, embedded in .*http_get only reaches public"
    with pytest.raises(ToolError, match=refused):
        await _get(f"http://{host}:{port}/secret", tmp_path)
