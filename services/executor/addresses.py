"""Which addresses are publicly routable, with IPv4 addresses inside IPv6 ones decoded first.

An IPv6 address can carry an IPv4 address that the network delivers to: IPv4-mapped
(``::ffff:127.0.0.1``), IPv4-compatible (``::127.0.0.1``, deprecated), SIIT-translated
(``::ffff:0:7f00:1``), NAT64 (``64:ff9b::7f00:1``, ``64:ff9b:1::/48``), 6to4
(``2002:7f00:1::1``) and Teredo (``2001::/32``). Python's ``is_global`` judges such an address
by its IPv6 prefix alone and calls several of them public; here the IPv4 address inside decides.
Pure functions: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Embedded", "IPAddress", "embedded_ipv4", "non_public_kind"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 ranges that are not globally reachable and that Python 3.11's ``is_global`` misses.
_NOT_GLOBAL_V6 = (
    (ipaddress.IPv6Network("fec0::/10"), "site-local"),
    (ipaddress.IPv6Network("3fff::/20"), "documentation"),
    (ipaddress.IPv6Network("5f00::/16"), "segment-routing"),
)


# From an address's 16 bytes: the IPv4 addresses it carries, each with the name of its form.
_Extract = Callable[[bytes], tuple[tuple[str, bytes], ...]]


def _low32(form: str) -> _Extract:
    return lambda packed: ((form, packed[12:]),)


def _nat64_48(packed: bytes) -> tuple[tuple[str, bytes], ...]:
    # RFC 6052 layout for a /48 prefix: bits 48-63, then (after the zero octet) bits 72-87.
    return (("NAT64", packed[6:8] + packed[9:11]),)


def _six_to_four(packed: bytes) -> tuple[tuple[str, bytes], ...]:
    return (("6to4", packed[2:6]),)


def _teredo(packed: bytes) -> tuple[tuple[str, bytes], ...]:
    # The server address is plain, the client's is stored inverted.
    return (("Teredo server", packed[4:8]), ("Teredo client", bytes(b ^ 0xFF for b in packed[12:])))


# The IPv6 forms that carry an IPv4 address; the first network that contains an address wins.
_EMBEDDINGS: tuple[tuple[ipaddress.IPv6Network, _Extract], ...] = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), _low32("IPv4-mapped")),
    (ipaddress.IPv6Network("::ffff:0:0:0/96"), _low32("IPv4-translated")),
    (ipaddress.IPv6Network("64:ff9b::/96"), _low32("NAT64")),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), _nat64_48),
    (ipaddress.IPv6Network("2002::/16"), _six_to_four),
    (ipaddress.IPv6Network("2001::/32"), _teredo),
    (ipaddress.IPv6Network("::/96"), _low32("IPv4-compatible")),
)


@dataclass(frozen=True, slots=True)
class Embedded:
    """An IPv4 address carried inside an IPv6 one, and the form that carries it."""

    address: ipaddress.IPv4Address
    form: str


def embedded_ipv4(address: IPAddress) -> tuple[Embedded, ...]:
    """The IPv4 addresses ``address`` delivers to (none for plain IPv4 or IPv6 addresses)."""
    if isinstance(address, ipaddress.IPv4Address):
        return ()
    packed = address.packed
    for network, extract in _EMBEDDINGS:
        if address in network and int(address) > 1:  # :: and ::1 are themselves
            return tuple(
                Embedded(ipaddress.IPv4Address(raw), form) for form, raw in extract(packed)
            )
    return ()


def non_public_kind(address: IPAddress) -> str | None:
    """What kind of non-public address ``address`` is ("loopback", ...), or None if public.

    An IPv6 address that carries an IPv4 address is public only if every IPv4 address it
    carries is; the IPv4-compatible form (deprecated, not routed) never is.
    """
    carried = embedded_ipv4(address)
    for embedded in carried:
        kind = _plain_kind(embedded.address)
        if kind is not None:
            return f"{kind} address ({embedded.address}, embedded in {embedded.form} form)"
        if embedded.form == "IPv4-compatible":
            return f"deprecated {embedded.form} address (not routed)"
    if carried:
        return None
    kind = _plain_kind(address)
    return None if kind is None else f"{kind} address"


def _plain_kind(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        for network, name in _NOT_GLOBAL_V6:
            if address in network:
                return name
    if address.is_global and not address.is_multicast:
        return None
    return next(
        (
            name
            for name, flag in (
                ("loopback", address.is_loopback),
                ("link-local", address.is_link_local),
                ("multicast", address.is_multicast),
                ("unspecified", address.is_unspecified),
                ("private", address.is_private),
            )
            if flag
        ),
        "not publicly routable",
    )
