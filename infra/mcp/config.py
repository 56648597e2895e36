"""``AGORA_MCP_SERVERS``: the MCP servers the executor connects, and how.

The value is a JSON object, inline or in a file (the value is then its path), in the shape
MCP hosts share (``mcpServers``: name -> server) with agora's own keys::

    {"mcpServers": {
      "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
      "docs": {"url": "https://docs.example/mcp",
               "headers": {"X-Team": "ops"},
               "bearer_token_env": "DOCS_TOKEN",
               "headers_file": {"X-Api-Key": "/run/secrets/docs-key"},
               "timeout_s": 20, "trusted": false}}}

A server is a stdio command (``command``, ``args``, ``env``, ``cwd``) or a Streamable HTTP
``url`` (``headers``; secret headers from the environment, ``headers_env`` / ``bearer_token_env``,
or from files, ``headers_file`` / ``bearer_token_file``). Secrets are read when the executor
connects, never stored in the settings, and registered for redaction in every log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from events.errors import ConfigurationError
from events.subjects import is_subject_token

__all__ = [
    "HeaderSource",
    "McpServer",
    "SecretHeader",
    "http_headers",
    "http_url",
    "parse_servers",
    "public_url",
    "read_json_setting",
    "resolve_headers",
    "timeout_and_trust",
]

_KEYS = frozenset(
    {
        "command",
        "args",
        "env",
        "cwd",
        "url",
        "headers",
        "headers_env",
        "headers_file",
        "bearer_token_env",
        "bearer_token_file",
        "timeout_s",
        "trusted",
        "type",
        "transport",
    }
)


@dataclass(frozen=True, slots=True)
class SecretHeader:
    """An HTTP header whose value is read at connect time: ``env`` names a variable,
    ``file`` a file (its content, stripped). ``bearer``: the value is sent as ``Bearer <v>``."""

    header: str
    env: str | None = None
    file: Path | None = None
    bearer: bool = False


@dataclass(frozen=True, slots=True)
class McpServer:
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: Path | None = None
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    secret_headers: tuple[SecretHeader, ...] = field(default=(), repr=False)
    # Every call of one of its tools may take this long unless the task says otherwise.
    timeout_s: float = 30.0
    # Untrusted (the default): its tools run only for tasks granted them (allowed_tools).
    trusted: bool = False

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "streamable-http"

    @property
    def origin(self) -> str:
        return f"mcp:{self.name}"

    @property
    def label(self) -> str:
        return f"MCP server {self.name}"

    def describe(self) -> str:
        """Where the server is, for people: the command or the URL, never a secret."""
        if self.command is not None:
            return " ".join([self.command, *self.args])
        assert self.url is not None
        return public_url(self.url)


def public_url(url: str) -> str:
    """``url`` for people and events: scheme, host and path. A URL may carry credentials
    (user:password@, ?token=): they are left out."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


class HeaderSource(Protocol):
    """What sends HTTP headers, some of them secret: an MCP server, an A2A agent."""

    @property
    def label(self) -> str: ...
    @property
    def headers(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def secret_headers(self) -> tuple[SecretHeader, ...]: ...


def parse_servers(raw: str | None) -> tuple[McpServer, ...]:
    """The configured servers; raw is inline JSON or the path of a JSON file."""
    if raw is None or not raw.strip():
        return ()
    document, where = read_json_setting(raw, "AGORA_MCP_SERVERS")
    if not isinstance(document, dict):
        raise ConfigurationError(f'{where}: expected {{"mcpServers": {{name: server}}}}')
    servers = document.get("mcpServers", document.get("servers"))
    if not isinstance(servers, dict):
        raise ConfigurationError(f'{where}: expected {{"mcpServers": {{name: server}}}}')
    return tuple(_server(f"{where}: server {name!r}", name, spec) for name, spec in servers.items())


def read_json_setting(raw: str, variable: str) -> tuple[Any, str]:
    """The JSON document a setting holds inline, or in the file it names (when it does not
    start with ``{``), and where it came from (for messages)."""
    text = raw.strip()
    where = variable
    if not text.startswith("{"):
        path = Path(text).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{where}={raw!r} cannot be read: {exc.strerror}") from None
        where = str(path)
    try:
        return json.loads(text), where
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{where} is not JSON: {exc}") from None


def _server(where: str, name: str, spec: Any) -> McpServer:
    if not is_subject_token(name):
        raise ConfigurationError(
            f"{where}: a server name has only letters, digits, '-' and '_' (its tools are "
            "named <server>.<tool>)"
        )
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{where}: expected an object")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {unknown}; known: {sorted(_KEYS)}")
    command, url = spec.get("command"), spec.get("url")
    if (command is None) == (url is None):
        raise ConfigurationError(f"{where}: give either command (stdio) or url (Streamable HTTP)")
    timeout, trusted = timeout_and_trust(where, spec, default_timeout_s=30.0)
    common: dict[str, Any] = {"name": name, "timeout_s": timeout, "trusted": trusted}
    if command is not None:
        if not isinstance(command, str) or not command:
            raise ConfigurationError(f"{where}: command must be a non-empty string")
        cwd = spec.get("cwd")
        return McpServer(
            command=command,
            args=tuple(_strings(where, "args", spec.get("args", []))),
            env=tuple(_string_map(where, "env", spec.get("env", {})).items()),
            cwd=Path(cwd).expanduser() if isinstance(cwd, str) else None,
            **common,
        )
    headers, secrets = http_headers(where, spec)
    return McpServer(
        url=http_url(where, "url", url), headers=headers, secret_headers=secrets, **common
    )


def http_url(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigurationError(f"{where}: {key} must start with http:// or https://")
    return value


def timeout_and_trust(
    where: str, spec: Mapping[str, Any], *, default_timeout_s: float
) -> tuple[float, bool]:
    """``timeout_s`` (positive seconds) and ``trusted`` (a boolean, false unless given)."""
    timeout = spec.get("timeout_s", default_timeout_s)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigurationError(f"{where}: timeout_s must be a positive number of seconds")
    trusted = spec.get("trusted", False)
    if not isinstance(trusted, bool):
        raise ConfigurationError(f"{where}: trusted must be true or false")
    return float(timeout), trusted


def http_headers(
    where: str, spec: Mapping[str, Any]
) -> tuple[tuple[tuple[str, str], ...], tuple[SecretHeader, ...]]:
    """The plain ``headers`` and the secret ones (``headers_env``, ``headers_file``,
    ``bearer_token_env``, ``bearer_token_file``) of an HTTP entry."""
    secrets = [
        SecretHeader(header, env=variable)
        for header, variable in _string_map(
            where, "headers_env", spec.get("headers_env", {})
        ).items()
    ]
    secrets += [
        SecretHeader(header, file=Path(path).expanduser())
        for header, path in _string_map(where, "headers_file", spec.get("headers_file", {})).items()
    ]
    if "bearer_token_env" in spec:
        secrets.append(
            SecretHeader("Authorization", env=_string(where, spec, "bearer_token_env"), bearer=True)
        )
    if "bearer_token_file" in spec:
        path = Path(_string(where, spec, "bearer_token_file")).expanduser()
        secrets.append(SecretHeader("Authorization", file=path, bearer=True))
    headers = tuple(_string_map(where, "headers", spec.get("headers", {})).items())
    return headers, tuple(secrets)


def _string(where: str, spec: Mapping[str, Any], key: str) -> str:
    value = spec[key]
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}: {key} must be a non-empty string")
    return value


def _strings(where: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigurationError(f"{where}: {key} must be a list of strings")
    return list(value)


def _string_map(where: str, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigurationError(f"{where}: {key} must be an object of strings")
    return dict(value)


def resolve_headers(
    server: HeaderSource, env: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The headers to send to ``server`` and the secret values among them (to redact).

    A secret that cannot be read is a ``ConfigurationError`` naming its source, never its value.
    """
    headers = dict(server.headers)
    secrets: list[str] = []
    for secret in server.secret_headers:
        if secret.env is not None:
            value = env.get(secret.env, "").strip()
            if not value:
                raise ConfigurationError(
                    f"{server.label}: header {secret.header} comes from the "
                    f"environment variable {secret.env}, which is not set"
                )
        else:
            assert secret.file is not None
            try:
                value = secret.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"{server.label}: header {secret.header} comes from "
                    f"{secret.file}, which cannot be read: {exc.strerror}"
                ) from None
        secrets.append(value)
        headers[secret.header] = f"Bearer {value}" if secret.bearer else value
    return headers, secrets
