"""Keeps ``http_get`` off the local network: loopback, private, link-local, multicast, ...

The check happens where connections are made (an httpcore network backend), after DNS
resolution and for every connection, redirects included, and the connection goes to the very
address that was checked: a name that resolves to 127.0.0.1, a redirect to the cloud metadata
endpoint (169.254.169.254) or a DNS answer that changes between check and use cannot reach
the NATS server or anything else local. Only addresses that are globally routable pass,
unless ``AGORA_HTTP_ALLOW`` lists the host name or a network (CIDR) containing the address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore
import httpx

from events.errors import ConfigurationError, ToolError
from services.executor.addresses import IPAddress, embedded_ipv4, non_public_kind

__all__ = ["AddressPolicy", "GuardedBackend", "guarded_http_client"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which non-public addresses are allowed anyway (by network, or by host name)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AddressPolicy:
        """From ``AGORA_HTTP_ALLOW`` entries: CIDRs (``10.0.0.0/8``), addresses or host names."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not name or "/" in name or not all(part for part in name.split(".")):
                raise ConfigurationError(
                    f"AGORA_HTTP_ALLOW entry {entry!r} is neither a network (CIDR such as "
                    "10.0.0.0/8), an address nor a host name"
                )
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why connecting to ``address`` (resolved from ``host``) is refused, or None."""
        if host.lower().rstrip(".") in self.hosts:
            return None
        candidates = (address, *(embedded.address for embedded in embedded_ipv4(address)))
        if any(candidate in network for candidate in candidates for network in self.networks):
            return None
        kind = non_public_kind(address)
        if kind is None:
            return None
        return (
            f"{host} resolves to {address}, a {kind}; http_get only reaches public "
            "addresses (allow this one with AGORA_HTTP_ALLOW, e.g. a CIDR or the host name)"
        )


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address against the policy, connects to an allowed one."""

    def __init__(
        self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    # The signatures are httpcore's (ASYNC109: its timeout parameters are part of them).
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        refusals = [self.policy.refusal(host, address) for address in addresses]
        allowed = [a for a, why in zip(addresses, refusals, strict=True) if why is None]
        if not allowed:
            raise ToolError(next((why for why in refusals if why), f"{host} has no address"))
        return await self._inner.connect_tcp(
            str(allowed[0]), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,  # noqa: ARG002
        timeout: float | None = None,  # noqa: ARG002, ASYNC109
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,  # noqa: ARG002
    ) -> httpcore.AsyncNetworkStream:
        raise ToolError("http_get does not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
    seen: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


def guarded_http_client(policy: AddressPolicy, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """The executor's HTTP client: follows redirects, every connection checked by ``policy``.

    ``trust_env=False``: a proxy from the environment would be a connection the guard
    does not see.
    """
    transport = httpx.AsyncHTTPTransport()
    # httpx builds its pool without a way to pass a network backend; the pool it builds
    # for a direct connection is replaced by the same pool with the guarded backend.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        network_backend=GuardedBackend(policy),
    )
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=True,
        timeout=httpx.Timeout(timeout_s),
        trust_env=False,
    )
