"""Settings from ``AGORA_*`` environment variables. Every default serves a first-time user."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict

from events.errors import ConfigurationError

# A size the Go runtime accepts as GOMEMLIMIT.
_GO_MEMORY = re.compile(r"[0-9]+(B|KiB|MiB|GiB|TiB)?")

__all__ = ["DATA_DIR_NAME", "LlmEndpoint", "Settings", "find_data_dir"]

Durability = Literal["fsync", "os"]
KiB = 1024
MiB = 1024 * KiB


DATA_DIR_NAME = ".agora"


def find_data_dir(start: Path) -> Path:
    """The nearest ``.agora`` directory in ``start`` or above it (so the CLI finds the running
    platform from any subdirectory of where ``agora up`` runs); ``./.agora`` when none is."""
    for directory in (start, *start.parents):
        candidate = directory / DATA_DIR_NAME
        if candidate.is_dir():
            return candidate if directory != start else Path(DATA_DIR_NAME)
    return Path(DATA_DIR_NAME)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


class _Security(TypedDict):
    nats_auth: bool
    nats_user: str | None
    nats_password: str | None
    nats_creds: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    tls_ca: Path | None
    http_allow: tuple[str, ...]


def _security(env: Mapping[str, str]) -> _Security:
    auth = env.get("AGORA_NATS_AUTH", "on").strip().lower()
    if auth not in ("on", "off"):
        raise ConfigurationError(f"AGORA_NATS_AUTH={auth!r}: use 'on' (default) or 'off'")
    tls_cert, tls_key = _path(env, "AGORA_TLS_CERT"), _path(env, "AGORA_TLS_KEY")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigurationError("AGORA_TLS_CERT and AGORA_TLS_KEY go together: set both or none")
    allow = env.get("AGORA_HTTP_ALLOW", "")
    return {
        "nats_auth": auth == "on",
        "nats_user": env.get("AGORA_NATS_USER") or None,
        "nats_password": env.get("AGORA_NATS_PASSWORD") or None,
        "nats_creds": _path(env, "AGORA_NATS_CREDS"),
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_ca": _path(env, "AGORA_TLS_CA"),
        "http_allow": tuple(a.strip() for a in allow.split(",") if a.strip()),
    }


@dataclass(frozen=True, slots=True)
class Settings:
    # None: agora starts (or finds) its embedded nats-server under data_dir.
    nats_urls: tuple[str, ...] | None = None
    # The embedded server's client port on 127.0.0.1; 0 picks any free port.
    nats_port: int = 4222
    # The embedded server's JetStream file store limit; 0: the server's default.
    nats_max_store_mb: int = 0
    # The embedded server's Go soft memory limit (GOMEMLIMIT); "" for none.
    nats_memory_limit: str = "192MiB"
    data_dir: Path = Path(".agora")
    durability: Durability = "fsync"
    log_level: str = "warning"
    log_format: Literal["json", "console"] = "json"
    workspace: Path = Path(".agora/workspace")
    max_intake_bytes: int = 256 * KiB
    max_message_bytes: int = 1 * MiB
    # An output (a task's, a goal's result) larger than this is stored once in the outputs
    # bucket and events refer to it (docs/events.md, "Large outputs").
    output_inline_bytes: int = 32 * KiB
    duplicate_window_s: float = 120.0
    ack_wait_s: float = 30.0
    # How long the active planner may go without pulling before a standby takes over.
    pinned_timeout_s: float = 5.0
    max_deliver: int = 8
    concurrency: int = 64
    executor_concurrency: int = 512
    stream_replicas: int = 1
    drain_timeout_s: float = 10.0
    # How long a service's pull request stays open at the server. A stopping service waits
    # for its open requests to end (so nothing they deliver waits out an ack wait), so this
    # also bounds how long stopping takes.
    pull_expires_s: float = 2.0
    query_timeout_s: float = 5.0
    query_max_rows: int = 10_000
    query_memory_limit: str = "512MB"
    projector_batch: int = 10_000
    # The LLM planner (used when an LLM is configured): requests per plan, tokens per request,
    # and an optional directory of prompt templates overriding the packaged ones.
    llm_plan_attempts: int = 3
    llm_plan_max_tokens: int = 4096
    planner_prompts: Path | None = None
    # LLM providers (docs/llm.md): the primary endpoint, then the ordered fallbacks.
    # No base URL and no provider configured: no LLM, the rule-based strategies run.
    llm_endpoints: tuple[LlmEndpoint, ...] = ()
    llm_timeout_s: float = 60.0
    llm_retries: int = 2
    llm_backoff_s: float = 0.5
    llm_retry_after_max_s: float = 30.0
    llm_concurrency: int = 4
    llm_breaker_threshold: int = 5
    llm_breaker_cooldown_s: float = 30.0
    llm_stream: bool = False
    llm_prices: Path | None = None
    # The most think steps a ReAct task may take before it fails without an answer.
    react_max_steps: int = 8
    # Memory (docs/memory.md): working-memory budget per goal, snapshot interval, embeddings.
    memory_working_tokens: int = 2000
    memory_snapshot_every: int = 5000
    embeddings_url: str | None = None
    embeddings_model: str = "text-embedding-3-small"
    embeddings_key: str | None = None
    # Security (docs/security.md). The embedded server requires credentials unless
    # AGORA_NATS_AUTH=off; a process finds its own under data_dir unless given them.
    nats_auth: bool = True
    nats_user: str | None = None
    nats_password: str | None = None
    nats_creds: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    # Private/loopback addresses http_get may reach anyway: CIDRs or host names.
    http_allow: tuple[str, ...] = ()
    # MCP servers whose tools the executor offers (docs/mcp.md): inline JSON or a file's path.
    mcp_servers: str | None = None
    # Remote A2A agents the executor may delegate to (docs/a2a.md): inline JSON or a path.
    a2a_agents: str | None = None
    # Which tool calls wait for a person's approval (docs/approvals.md): "default", "off"
    # (unset), inline JSON or a JSON file's path. Read by the planner.
    approval_policy: str | None = None
    # How many goals of a key may run at once and how fast they may start (docs/flow.md):
    # inline JSON or a JSON file's path; unset: no limits. Read by the planner.
    flow_policy: str | None = None
    # How long the executor waits for its MCP servers at start before it takes tasks anyway.
    mcp_start_wait_s: float = 10.0
    # Limits of one sandboxed program (the python tool; docs/security.md).
    sandbox_cpu_s: int = 5
    sandbox_memory_mb: int = 512
    sandbox_processes: int = 16
    sandbox_wall_s: float = 10.0
    # A sleep longer than this waits as a durable timer (a scheduled message nats-server keeps)
    # instead of in the executor's process; shorter ones keep the fast in-process path.
    timer_threshold_s: float = 30.0
    # The services' hot path (consume, ack, publish) over agora's lean wire client; False:
    # over nats-py, as it also falls back to when the wire client cannot connect (TLS).
    wire_client: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        urls = env.get("AGORA_NATS_URL", "").strip()
        durability = env.get("AGORA_DURABILITY", "fsync").strip().lower()
        if durability not in ("fsync", "os"):
            raise ConfigurationError(
                f"AGORA_DURABILITY={durability!r}: use 'fsync' (survives power loss) or 'os'"
            )
        log_format = env.get("AGORA_LOG_FORMAT", "json").strip().lower()
        if log_format not in ("json", "console"):
            raise ConfigurationError(f"AGORA_LOG_FORMAT={log_format!r}: use 'json' or 'console'")
        raw_dir = env.get("AGORA_DATA_DIR", "").strip()
        data_dir = Path(raw_dir).expanduser() if raw_dir else find_data_dir(Path.cwd())
        settings = cls(
            nats_urls=tuple(u.strip() for u in urls.split(",") if u.strip()) or None,
            data_dir=data_dir,
            nats_port=_int(env, "AGORA_NATS_PORT", 4222),
            nats_max_store_mb=_int(env, "AGORA_NATS_MAX_STORE_MB", 0),
            nats_memory_limit=env.get("AGORA_NATS_MEMORY_LIMIT", "192MiB").strip(),
            durability="fsync" if durability == "fsync" else "os",
            log_level=env.get("AGORA_LOG_LEVEL", "warning").strip().lower(),
            log_format="json" if log_format == "json" else "console",
            workspace=Path(env.get("AGORA_WORKSPACE", str(data_dir / "workspace"))).expanduser(),
            max_intake_bytes=_int(env, "AGORA_MAX_INTAKE_BYTES", 256 * KiB),
            output_inline_bytes=_int(env, "AGORA_OUTPUT_INLINE_BYTES", 32 * KiB),
            duplicate_window_s=_float(env, "AGORA_DUPLICATE_WINDOW_S", 120.0),
            ack_wait_s=_float(env, "AGORA_ACK_WAIT_S", 30.0),
            pinned_timeout_s=_float(env, "AGORA_PINNED_TIMEOUT_S", 5.0),
            max_deliver=_int(env, "AGORA_MAX_DELIVER", 8),
            concurrency=_int(env, "AGORA_CONCURRENCY", 64),
            executor_concurrency=_int(env, "AGORA_EXECUTOR_CONCURRENCY", 512),
            stream_replicas=_int(env, "AGORA_STREAM_REPLICAS", 1),
            drain_timeout_s=_float(env, "AGORA_DRAIN_TIMEOUT_S", 10.0),
            pull_expires_s=_float(env, "AGORA_PULL_EXPIRES_S", 2.0),
            query_timeout_s=_float(env, "AGORA_QUERY_TIMEOUT_S", 5.0),
            query_max_rows=_int(env, "AGORA_QUERY_MAX_ROWS", 10_000),
            query_memory_limit=env.get("AGORA_QUERY_MEMORY_LIMIT", "512MB"),
            projector_batch=_int(env, "AGORA_PROJECTOR_BATCH", 10_000),
            llm_plan_attempts=_int(env, "AGORA_LLM_PLAN_ATTEMPTS", 3),
            llm_plan_max_tokens=_int(env, "AGORA_LLM_PLAN_MAX_TOKENS", 4096),
            planner_prompts=Path(env["AGORA_PLANNER_PROMPTS"]).expanduser()
            if env.get("AGORA_PLANNER_PROMPTS")
            else None,
            llm_endpoints=_llm_endpoints(env),
            llm_timeout_s=_float(env, "AGORA_LLM_TIMEOUT_S", 60.0),
            llm_retries=_int(env, "AGORA_LLM_RETRIES", 2),
            llm_backoff_s=_float(env, "AGORA_LLM_BACKOFF_S", 0.5),
            llm_retry_after_max_s=_float(env, "AGORA_LLM_RETRY_AFTER_MAX_S", 30.0),
            llm_concurrency=_int(env, "AGORA_LLM_CONCURRENCY", 4),
            llm_breaker_threshold=_int(env, "AGORA_LLM_BREAKER_THRESHOLD", 5),
            llm_breaker_cooldown_s=_float(env, "AGORA_LLM_BREAKER_COOLDOWN_S", 30.0),
            llm_stream=_bool(env, "AGORA_LLM_STREAM", default=False),
            llm_prices=Path(env["AGORA_LLM_PRICES"]).expanduser()
            if env.get("AGORA_LLM_PRICES")
            else None,
            react_max_steps=_int(env, "AGORA_REACT_MAX_STEPS", 8),
            memory_working_tokens=_int(env, "AGORA_MEMORY_WORKING_TOKENS", 2000),
            memory_snapshot_every=_int(env, "AGORA_MEMORY_SNAPSHOT_EVERY", 5000),
            embeddings_url=env.get("AGORA_EMBEDDINGS_URL", "").strip() or None,
            embeddings_model=env.get("AGORA_EMBEDDINGS_MODEL", "").strip()
            or "text-embedding-3-small",
            embeddings_key=env.get("AGORA_EMBEDDINGS_KEY", "").strip() or None,
            **_security(env),
            mcp_servers=env.get("AGORA_MCP_SERVERS", "").strip() or None,
            a2a_agents=env.get("AGORA_A2A_AGENTS", "").strip() or None,
            mcp_start_wait_s=_float(env, "AGORA_MCP_START_WAIT_S", 10.0),
            approval_policy=env.get("AGORA_APPROVAL_POLICY", "").strip() or None,
            flow_policy=env.get("AGORA_FLOW_POLICY", "").strip() or None,
            sandbox_cpu_s=_int(env, "AGORA_SANDBOX_CPU_S", 5),
            sandbox_memory_mb=_int(env, "AGORA_SANDBOX_MEMORY_MB", 512),
            sandbox_processes=_int(env, "AGORA_SANDBOX_PROCESSES", 16),
            sandbox_wall_s=_float(env, "AGORA_SANDBOX_WALL_S", 10.0),
            timer_threshold_s=_float(env, "AGORA_TIMER_THRESHOLD_S", 30.0),
            wire_client=_bool(env, "AGORA_WIRE_CLIENT", default=True),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if not 0 < self.max_intake_bytes <= self.max_message_bytes:
            raise ConfigurationError(
                f"AGORA_MAX_INTAKE_BYTES must be between 1 and {self.max_message_bytes}"
            )
        if not 0 < self.output_inline_bytes <= self.max_message_bytes // 4:
            raise ConfigurationError(
                f"AGORA_OUTPUT_INLINE_BYTES must be between 1 and {self.max_message_bytes // 4}"
            )
        self._check_embedded_server()
        if self.max_deliver < 1:
            raise ConfigurationError("AGORA_MAX_DELIVER must be at least 1")
        if self.concurrency < 1 or self.executor_concurrency < 1:
            raise ConfigurationError("AGORA_CONCURRENCY values must be at least 1")
        if self.llm_plan_attempts < 1 or self.llm_plan_max_tokens < 1:
            raise ConfigurationError(
                "AGORA_LLM_PLAN_ATTEMPTS and AGORA_LLM_PLAN_MAX_TOKENS must be at least 1"
            )
        if self.llm_timeout_s <= 0 or self.llm_concurrency < 1:
            raise ConfigurationError(
                "AGORA_LLM_TIMEOUT_S must be positive and AGORA_LLM_CONCURRENCY at least 1"
            )
        if self.llm_retries < 0 or self.llm_breaker_threshold < 1:
            raise ConfigurationError(
                "AGORA_LLM_RETRIES must be 0 or more and AGORA_LLM_BREAKER_THRESHOLD at least 1"
            )
        if self.react_max_steps < 1:
            raise ConfigurationError("AGORA_REACT_MAX_STEPS must be at least 1")
        if self.memory_working_tokens < 16 or self.memory_snapshot_every < 1:
            raise ConfigurationError(
                "AGORA_MEMORY_WORKING_TOKENS must be at least 16 and "
                "AGORA_MEMORY_SNAPSHOT_EVERY at least 1"
            )
        if min(self.sandbox_cpu_s, self.sandbox_memory_mb, self.sandbox_processes) < 1 or not (
            self.sandbox_wall_s > 0
        ):
            raise ConfigurationError("AGORA_SANDBOX_* limits must be positive")
        if not self.timer_threshold_s >= 0:
            raise ConfigurationError("AGORA_TIMER_THRESHOLD_S must be 0 or more seconds")

    def _check_embedded_server(self) -> None:
        if not 0 <= self.nats_port <= 65535:
            raise ConfigurationError("AGORA_NATS_PORT must be between 0 and 65535")
        if self.nats_max_store_mb < 0:
            raise ConfigurationError("AGORA_NATS_MAX_STORE_MB must be 0 (no limit) or more")
        if self.nats_memory_limit and not _GO_MEMORY.fullmatch(self.nats_memory_limit):
            raise ConfigurationError(
                f"AGORA_NATS_MEMORY_LIMIT is {self.nats_memory_limit!r}: give a size such as "
                "192MiB or 1GiB (units B, KiB, MiB, GiB, TiB), or empty for no limit"
            )

    def to_env(self) -> dict[str, str]:
        """These settings as ``AGORA_*`` variables: what a child process needs to match them."""
        env = {
            "AGORA_DATA_DIR": str(self.data_dir),
            "AGORA_NATS_PORT": str(self.nats_port),
            "AGORA_NATS_MAX_STORE_MB": str(self.nats_max_store_mb),
            "AGORA_NATS_MEMORY_LIMIT": self.nats_memory_limit,
            "AGORA_DURABILITY": self.durability,
            "AGORA_LOG_LEVEL": self.log_level,
            "AGORA_LOG_FORMAT": self.log_format,
            "AGORA_WORKSPACE": str(self.workspace),
            "AGORA_MAX_INTAKE_BYTES": str(self.max_intake_bytes),
            "AGORA_OUTPUT_INLINE_BYTES": str(self.output_inline_bytes),
            "AGORA_DUPLICATE_WINDOW_S": str(self.duplicate_window_s),
            "AGORA_ACK_WAIT_S": str(self.ack_wait_s),
            "AGORA_PINNED_TIMEOUT_S": str(self.pinned_timeout_s),
            "AGORA_MAX_DELIVER": str(self.max_deliver),
            "AGORA_CONCURRENCY": str(self.concurrency),
            "AGORA_EXECUTOR_CONCURRENCY": str(self.executor_concurrency),
            "AGORA_STREAM_REPLICAS": str(self.stream_replicas),
            "AGORA_DRAIN_TIMEOUT_S": str(self.drain_timeout_s),
            "AGORA_PULL_EXPIRES_S": str(self.pull_expires_s),
            "AGORA_QUERY_TIMEOUT_S": str(self.query_timeout_s),
            "AGORA_QUERY_MAX_ROWS": str(self.query_max_rows),
            "AGORA_QUERY_MEMORY_LIMIT": self.query_memory_limit,
            "AGORA_PROJECTOR_BATCH": str(self.projector_batch),
            "AGORA_REACT_MAX_STEPS": str(self.react_max_steps),
            "AGORA_MEMORY_WORKING_TOKENS": str(self.memory_working_tokens),
            "AGORA_MEMORY_SNAPSHOT_EVERY": str(self.memory_snapshot_every),
            "AGORA_EMBEDDINGS_MODEL": self.embeddings_model,
            "AGORA_NATS_AUTH": "on" if self.nats_auth else "off",
            "AGORA_HTTP_ALLOW": ",".join(self.http_allow),
            "AGORA_SANDBOX_CPU_S": str(self.sandbox_cpu_s),
            "AGORA_SANDBOX_MEMORY_MB": str(self.sandbox_memory_mb),
            "AGORA_SANDBOX_PROCESSES": str(self.sandbox_processes),
            "AGORA_SANDBOX_WALL_S": str(self.sandbox_wall_s),
            "AGORA_TIMER_THRESHOLD_S": str(self.timer_threshold_s),
            "AGORA_WIRE_CLIENT": "on" if self.wire_client else "off",
        }
        env["AGORA_LLM_PLAN_ATTEMPTS"] = str(self.llm_plan_attempts)
        env["AGORA_LLM_PLAN_MAX_TOKENS"] = str(self.llm_plan_max_tokens)
        if self.planner_prompts is not None:
            env["AGORA_PLANNER_PROMPTS"] = str(self.planner_prompts)
        if self.mcp_servers:
            env["AGORA_MCP_SERVERS"] = self.mcp_servers
        if self.a2a_agents:
            env["AGORA_A2A_AGENTS"] = self.a2a_agents
        env["AGORA_MCP_START_WAIT_S"] = str(self.mcp_start_wait_s)
        if self.approval_policy:
            env["AGORA_APPROVAL_POLICY"] = self.approval_policy
        if self.flow_policy:
            env["AGORA_FLOW_POLICY"] = self.flow_policy
        if self.embeddings_url:
            env["AGORA_EMBEDDINGS_URL"] = self.embeddings_url
        if self.embeddings_key:
            env["AGORA_EMBEDDINGS_KEY"] = self.embeddings_key
        # Credentials are per process (the supervisor hands each service its own); TLS is not.
        for name, path in (
            ("AGORA_TLS_CERT", self.tls_cert),
            ("AGORA_TLS_KEY", self.tls_key),
            ("AGORA_TLS_CA", self.tls_ca),
        ):
            if path is not None:
                env[name] = str(path)
        if self.nats_urls:
            env["AGORA_NATS_URL"] = ",".join(self.nats_urls)
        env.update(self._llm_env())
        return env

    def _llm_env(self) -> dict[str, str]:
        env = {
            "AGORA_LLM_TIMEOUT_S": str(self.llm_timeout_s),
            "AGORA_LLM_RETRIES": str(self.llm_retries),
            "AGORA_LLM_BACKOFF_S": str(self.llm_backoff_s),
            "AGORA_LLM_RETRY_AFTER_MAX_S": str(self.llm_retry_after_max_s),
            "AGORA_LLM_CONCURRENCY": str(self.llm_concurrency),
            "AGORA_LLM_BREAKER_THRESHOLD": str(self.llm_breaker_threshold),
            "AGORA_LLM_BREAKER_COOLDOWN_S": str(self.llm_breaker_cooldown_s),
            "AGORA_LLM_STREAM": "true" if self.llm_stream else "false",
        }
        if self.llm_prices is not None:
            env["AGORA_LLM_PRICES"] = str(self.llm_prices)
        if self.llm_endpoints:
            primary, *fallbacks = self.llm_endpoints
            env["AGORA_LLM_PROVIDER"] = primary.provider
            env["AGORA_LLM_BASE_URL"] = primary.base_url
            env["AGORA_LLM_MODEL"] = primary.model
            # A child process gets the key itself: it may not see the parent's key file.
            env["AGORA_LLM_API_KEY"] = primary.api_key
            if fallbacks:
                env["AGORA_LLM_FALLBACKS"] = json.dumps([f.as_json() for f in fallbacks])
        return env

    @property
    def embedded(self) -> bool:
        return self.nats_urls is None

    @property
    def nats_dir(self) -> Path:
        return self.data_dir / "nats"


# -- LLM endpoints ---------------------------------------------------------------------------

LlmProvider = Literal["openai", "anthropic"]
DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}


@dataclass(frozen=True, slots=True)
class LlmEndpoint:
    """One provider of the chain. The key is kept out of ``repr`` (and so out of logs)."""

    provider: LlmProvider
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"

    def as_json(self) -> dict[str, str]:
        return {
            "provider": self.provider,
            "base_url": self.base_url,
            "model": self.model,
            "api_key": self.api_key,
        }


def _bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name}={raw!r}: use true or false")


def _read_key_file(name: str, path: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"{name}={path!r} cannot be read: {exc.strerror}") from None


def _endpoint(
    where: str,
    provider: str,
    base_url: str,
    model: str,
    api_key: str,
) -> LlmEndpoint:
    provider = provider.strip().lower() or "openai"
    if provider not in DEFAULT_BASE_URLS:
        raise ConfigurationError(f"{where}: provider {provider!r} is not 'openai' or 'anthropic'")
    if not model.strip():
        raise ConfigurationError(f'{where}: name the model (AGORA_LLM_MODEL or "model")')
    url = (base_url.strip() or DEFAULT_BASE_URLS[provider]).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"{where}: base URL {url!r} must start with http:// or https://")
    return LlmEndpoint(
        provider="openai" if provider == "openai" else "anthropic",
        base_url=url,
        model=model.strip(),
        api_key=api_key.strip(),
    )


_FALLBACK_KEYS = {"provider", "base_url", "model", "api_key", "api_key_env", "api_key_file"}


def _fallback(env: Mapping[str, str], index: int, entry: object) -> LlmEndpoint:
    where = f"AGORA_LLM_FALLBACKS[{index}]"
    if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
        raise ConfigurationError(f"{where} must be an object of strings")
    unknown = set(entry) - _FALLBACK_KEYS
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
    key = entry.get("api_key", "")
    if entry.get("api_key_env"):
        key = env.get(entry["api_key_env"], "")
    if entry.get("api_key_file"):
        key = _read_key_file(f"{where}.api_key_file", entry["api_key_file"])
    return _endpoint(
        where, entry.get("provider", ""), entry.get("base_url", ""), entry.get("model", ""), key
    )


def _llm_endpoints(env: Mapping[str, str]) -> tuple[LlmEndpoint, ...]:
    """The primary endpoint from AGORA_LLM_*, then AGORA_LLM_FALLBACKS (a JSON list)."""
    provider = env.get("AGORA_LLM_PROVIDER", "")
    base_url = env.get("AGORA_LLM_BASE_URL", "")
    endpoints: list[LlmEndpoint] = []
    if provider.strip() or base_url.strip():
        key = env.get("AGORA_LLM_API_KEY", "")
        if env.get("AGORA_LLM_API_KEY_FILE"):
            key = _read_key_file("AGORA_LLM_API_KEY_FILE", env["AGORA_LLM_API_KEY_FILE"])
        endpoints.append(
            _endpoint("AGORA_LLM_*", provider, base_url, env.get("AGORA_LLM_MODEL", ""), key)
        )
    raw = env.get("AGORA_LLM_FALLBACKS", "").strip()
    if raw:
        try:
            entries = json.loads(raw)
        except ValueError:
            raise ConfigurationError(
                "AGORA_LLM_FALLBACKS must be a JSON list of "
                '{"provider", "base_url", "model", "api_key_env"} objects'
            ) from None
        if not isinstance(entries, list):
            raise ConfigurationError("AGORA_LLM_FALLBACKS must be a JSON list")
        if not endpoints:
            raise ConfigurationError("AGORA_LLM_FALLBACKS needs a primary AGORA_LLM_BASE_URL")
        endpoints += [_fallback(env, i, entry) for i, entry in enumerate(entries)]
    return tuple(endpoints)
