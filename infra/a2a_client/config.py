"""``AGORA_A2A_AGENTS``: the remote A2A agents the executor may delegate to, and how.

The value is a JSON object, inline or in a file (the value is then its path), shaped like
``AGORA_MCP_SERVERS`` (name -> agent) with the same keys for headers and secrets::

    {"a2aAgents": {
      "research": {"card_url": "https://agents.example/.well-known/agent-card.json",
                   "bearer_token_file": "/run/secrets/research-token",
                   "timeout_s": 300, "trusted": false}}}

Each agent is one tool, ``a2a.<name>``. Secrets are read when the executor connects, never
stored in the settings, and registered for redaction in every log line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from events.errors import ConfigurationError
from events.subjects import is_subject_token
from infra.mcp.config import (
    SecretHeader,
    http_headers,
    http_url,
    public_url,
    read_json_setting,
    timeout_and_trust,
)

__all__ = ["A2A_TOOL_PREFIX", "A2AAgent", "check_names", "parse_agents"]

# An agent named research is the tool a2a.research.
A2A_TOOL_PREFIX = "a2a."
_KEYS = frozenset(
    {
        "card_url",
        "headers",
        "headers_env",
        "headers_file",
        "bearer_token_env",
        "bearer_token_file",
        "timeout_s",
        "trusted",
    }
)
# Agents take longer than tools: a delegated task is a whole piece of work.
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class A2AAgent:
    name: str
    card_url: str
    headers: tuple[tuple[str, str], ...] = ()
    secret_headers: tuple[SecretHeader, ...] = field(default=(), repr=False)
    # A delegation may take this long unless the task says otherwise.
    timeout_s: float = DEFAULT_TIMEOUT_S
    # Untrusted (the default): only tasks granted a2a.<name> (allowed_tools) may delegate.
    trusted: bool = False

    @property
    def tool(self) -> str:
        return f"{A2A_TOOL_PREFIX}{self.name}"

    @property
    def transport(self) -> str:
        return "a2a-jsonrpc"

    @property
    def origin(self) -> str:
        return f"a2a:{self.name}"

    @property
    def label(self) -> str:
        return f"A2A agent {self.name}"

    def describe(self) -> str:
        """Where the agent's card is, for people: never a secret."""
        return public_url(self.card_url)


def parse_agents(raw: str | None) -> tuple[A2AAgent, ...]:
    """The configured agents; ``raw`` is inline JSON or the path of a JSON file."""
    if raw is None or not raw.strip():
        return ()
    document, where = read_json_setting(raw, "AGORA_A2A_AGENTS")
    agents = document.get("a2aAgents") if isinstance(document, dict) else None
    if not isinstance(agents, dict):
        raise ConfigurationError(f'{where}: expected {{"a2aAgents": {{name: agent}}}}')
    return tuple(_agent(f"{where}: agent {name!r}", name, spec) for name, spec in agents.items())


def _agent(where: str, name: str, spec: Any) -> A2AAgent:
    if not is_subject_token(name):
        raise ConfigurationError(
            f"{where}: an agent name has only letters, digits, '-' and '_' (its tool is a2a.<name>)"
        )
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{where}: expected an object")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {unknown}; known: {sorted(_KEYS)}")
    if "card_url" not in spec:
        raise ConfigurationError(f"{where}: card_url (the agent card's URL) is required")
    timeout, trusted = timeout_and_trust(where, spec, default_timeout_s=DEFAULT_TIMEOUT_S)
    headers, secrets = http_headers(where, spec)
    return A2AAgent(
        name=name,
        card_url=http_url(where, "card_url", spec["card_url"]),
        headers=headers,
        secret_headers=secrets,
        timeout_s=timeout,
        trusted=trusted,
    )


def check_names(agents: Iterable[A2AAgent], mcp_servers: Iterable[str]) -> None:
    """Agents and MCP servers share the tool listings' names (``_mcp_<name>``), and an MCP
    server named ``a2a`` would list tools named like agents: refuse either clash."""
    servers = set(mcp_servers)
    for agent in agents:
        if agent.name in servers:
            raise ConfigurationError(
                f"AGORA_A2A_AGENTS: agent {agent.name!r} has the name of an MCP server "
                "(AGORA_MCP_SERVERS): give one of them another name"
            )
        if "a2a" in servers:
            raise ConfigurationError(
                "AGORA_MCP_SERVERS: an MCP server named 'a2a' would list tools named like A2A "
                "agents' (a2a.<name>): give it another name"
            )
