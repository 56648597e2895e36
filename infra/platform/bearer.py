"""Bearer tokens for agora's HTTP endpoints (``agora mcp --http``, ``agora a2a``).

An endpoint's token comes from its environment variable or a file. Bound to loopback without
one, agora makes one and keeps it under the data directory (readable by its owner only), so
the endpoint is never open to every local user; bound to any other address without one, the
endpoint refuses to start. Tokens are compared in constant time and never printed: a
``BearerToken`` names where it came from, for messages.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from events.errors import ConfigurationError

__all__ = ["BearerToken", "TokenSource", "is_loopback", "resolve_token", "tokens_match"]

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


@dataclass(frozen=True, slots=True)
class TokenSource:
    """How one endpoint names its token in messages."""

    endpoint: str  # "agora mcp --http"
    purpose: str  # "MCP"
    env_var: str  # "AGORA_MCP_TOKEN"
    file_option: str  # "--token-file (AGORA_MCP_TOKEN_FILE)"


def resolve_token(
    spec: TokenSource,
    *,
    token: str | None,
    token_file: Path | None,
    host: str,
    generated_path: Path,
) -> BearerToken:
    """The token clients must send. Raises ``ConfigurationError`` when none may be used."""
    if token:
        return _checked(spec, BearerToken(token.strip(), spec.env_var))
    if token_file is not None:
        try:
            value = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the {spec.purpose} bearer token from {token_file}: {exc.strerror}"
            ) from None
        return _checked(spec, BearerToken(value, str(token_file)))
    if not is_loopback(host):
        raise ConfigurationError(
            f"{spec.endpoint} on {host} (not a loopback address) needs a bearer token: set "
            f"{spec.env_var} or give {spec.file_option}"
        )
    return BearerToken(_generated(generated_path), str(generated_path))


def tokens_match(given: str, expected: str) -> bool:
    """Constant-time comparison: how long it takes says nothing about the token."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _checked(spec: TokenSource, token: BearerToken) -> BearerToken:
    if len(token.value) < _MIN_TOKEN_CHARS:
        raise ConfigurationError(
            f"the {spec.purpose} bearer token from {token.source} is too short: use at least "
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
