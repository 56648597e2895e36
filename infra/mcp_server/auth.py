"""Who may use agora's MCP endpoint over HTTP: one bearer token, checked in constant time.

The token comes from ``AGORA_MCP_TOKEN`` or a file (``AGORA_MCP_TOKEN_FILE``, ``--token-file``).
Bound to loopback without one, agora makes one and keeps it in ``<data dir>/mcp/token``
(readable by its owner only), so the endpoint is never open to every local user; bound to any
other address without one, it refuses to start. The token is registered with the log
redaction and is never printed. The rules are every HTTP endpoint's
(:mod:`infra.platform.bearer`); this module names the MCP endpoint's token and adapts it to
the SDK's ``TokenVerifier``.
"""

from __future__ import annotations

from pathlib import Path

from mcp.server.auth.provider import AccessToken

from infra.platform import bearer
from infra.platform.bearer import BearerToken, is_loopback, tokens_match

__all__ = [
    "CLIENT_ID",
    "MCP_TOKEN",
    "BearerToken",
    "StaticTokenVerifier",
    "is_loopback",
    "resolve_token",
]

CLIENT_ID = "agora-mcp-client"
MCP_TOKEN = bearer.TokenSource(
    endpoint="agora mcp --http",
    purpose="MCP",
    env_var="AGORA_MCP_TOKEN",
    file_option="--token-file (AGORA_MCP_TOKEN_FILE)",
)


def resolve_token(
    *, token: str | None, token_file: Path | None, host: str, generated_path: Path
) -> BearerToken:
    """The token MCP clients must send. Raises ``ConfigurationError`` when none may be used."""
    return bearer.resolve_token(
        MCP_TOKEN, token=token, token_file=token_file, host=host, generated_path=generated_path
    )


class StaticTokenVerifier:
    """The SDK's ``TokenVerifier`` for one shared token."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def verify_token(self, token: str) -> AccessToken | None:
        if not tokens_match(token, self._token):
            return None
        return AccessToken(token=token, client_id=CLIENT_ID, scopes=[])
