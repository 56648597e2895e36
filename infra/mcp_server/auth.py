"""Who may use agora's MCP endpoint over HTTP: one bearer token, checked in constant time.

The token comes from ``AGORA_MCP_TOKEN`` or a file (``AGORA_MCP_TOKEN_FILE``, ``--token-file``).
Bound to loopback without one, agora makes one and keeps it in ``<data dir>/mcp/token``
(readable by its owner only), so the endpoint is never open to every local user; bound to any
other address without one, it refuses to start. The token is registered with the log
redaction and is never printed.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from mcp.server.auth.provider import AccessToken

from events.errors import ConfigurationError

__all__ = [
    "CLIENT_ID",
    "BearerToken",
    "StaticTokenVerifier",
    "is_loopback",
    "resolve_token",
]

CLIENT_ID = "agora-mcp-client"
_MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the endpoint on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


@dataclass(frozen=True, slots=True)
class BearerToken:
    value: str
    source: str  # where it came from, for messages (never the value)


def resolve_token(
    *, token: str | None, token_file: Path | None, host: str, generated_path: Path
) -> BearerToken:
    """The token clients must send. Raises ``ConfigurationError`` when none may be used."""
    if token:
        return _checked(BearerToken(token.strip(), "AGORA_MCP_TOKEN"))
    if token_file is not None:
        try:
            value = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the MCP bearer token from {token_file}: {exc.strerror}"
            ) from None
        return _checked(BearerToken(value, str(token_file)))
    if not is_loopback(host):
        raise ConfigurationError(
            f"agora mcp --http on {host} (not a loopback address) needs a bearer token: set "
            "AGORA_MCP_TOKEN or give --token-file (AGORA_MCP_TOKEN_FILE)"
        )
    return BearerToken(_generated(generated_path), str(generated_path))


def _checked(token: BearerToken) -> BearerToken:
    if len(token.value) < _MIN_TOKEN_CHARS:
        raise ConfigurationError(
            f"the MCP bearer token from {token.source} is too short: use at least "
            f"{_MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)"
        )
    return token


def _generated(path: Path) -> str:
    """The token kept at ``path``, made (owner-only) the first time."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(value + "\n")
    return value


class StaticTokenVerifier:
    """The SDK's ``TokenVerifier`` for one shared token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        return AccessToken(token=token, client_id=CLIENT_ID, scopes=[])
