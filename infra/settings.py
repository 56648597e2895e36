"""Settings from ``AGORA_*`` environment variables. Every default serves a first-time user.

The variables are declared in infra/environment.py (type, default, meaning); this module
resolves them into what the code runs with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from events.errors import ConfigurationError
from infra.client_settings import DATA_DIR_NAME, comma_list, find_data_dir
from infra.environment import Environment, env_name, process_environment, read_environment

__all__ = [
    "DATA_DIR_NAME",
    "EndpointSettings",
    "LlmEndpoint",
    "OtlpTarget",
    "Settings",
    "find_data_dir",
]

Durability = Literal["fsync", "os"]
KiB = 1024
MiB = 1024 * KiB


_DEFAULTS = Environment.model_construct()  # the declared defaults, as they are


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """The bearer tokens (or their files) of agora's HTTP endpoints, kept out of ``repr``."""

    mcp_token: str | None = field(default=None, repr=False)
    mcp_token_file: Path | None = None
    a2a_token: str | None = field(default=None, repr=False)
    a2a_token_file: Path | None = None
    a2a_public_url: str | None = None
    agui_token: str | None = field(default=None, repr=False)
    agui_token_file: Path | None = None
    ui_token: str | None = field(default=None, repr=False)
    ui_token_file: Path | None = None
    ui: bool = _DEFAULTS.ui
    ui_host: str = _DEFAULTS.ui_host
    ui_port: int = _DEFAULTS.ui_port


@dataclass(frozen=True, slots=True)
class OtlpTarget:
    """Where ``agora traces`` sends spans (or ``agora metrics`` metrics), as the
    OTEL_EXPORTER_OTLP_* variables name it."""

    protocol: Literal["http/protobuf", "grpc"] = _DEFAULTS.otlp_protocol
    endpoint: str | None = None  # the signal's own endpoint, in full
    base_endpoint: str | None = None  # the receiver's base URL
    signal: Literal["traces", "metrics"] = "traces"

    @property
    def url(self) -> str:
        """Where the spans go, as the exporter will resolve it (for messages)."""
        if self.endpoint:
            return self.endpoint
        if self.protocol == "grpc":
            return self.base_endpoint or "http://localhost:4317"
        base = (self.base_endpoint or "http://localhost:4318").rstrip("/")
        return f"{base}/v1/{self.signal}"


@dataclass(frozen=True, slots=True)
class Settings:
    """What agora runs with: the variables of infra/environment.py, resolved (the data
    directory found, URLs split, the LLM chain built). Defaults are the declared ones."""

    # None: agora starts (or finds) its embedded nats-server under data_dir.
    nats_urls: tuple[str, ...] | None = None
    nats_port: int = _DEFAULTS.nats_port
    nats_max_store_mb: int = _DEFAULTS.nats_max_store_mb
    nats_memory_limit: str = _DEFAULTS.nats_memory_limit
    nats_server_bin: Path | None = None
    nats_monitor_url: str | None = None
    data_dir: Path = Path(DATA_DIR_NAME)
    durability: Durability = _DEFAULTS.durability
    log_level: str = _DEFAULTS.log_level
    log_format: Literal["json", "console"] = _DEFAULTS.log_format
    workspace: Path = Path(DATA_DIR_NAME) / "workspace"
    max_intake_bytes: int = _DEFAULTS.max_intake_bytes
    # Not configurable: the streams' message size limit.
    max_message_bytes: int = 1 * MiB
    # An output (a task's, a goal's result) larger than this is stored once in the outputs
    # bucket and events refer to it (docs/events.md, "Large outputs").
    output_inline_bytes: int = _DEFAULTS.output_inline_bytes
    duplicate_window_s: float = _DEFAULTS.duplicate_window_s
    ack_wait_s: float = _DEFAULTS.ack_wait_s
    pinned_timeout_s: float = _DEFAULTS.pinned_timeout_s
    max_deliver: int = _DEFAULTS.max_deliver
    concurrency: int = _DEFAULTS.concurrency
    executor_concurrency: int = _DEFAULTS.executor_concurrency
    stream_replicas: int = _DEFAULTS.stream_replicas
    drain_timeout_s: float = _DEFAULTS.drain_timeout_s
    # How long a service's pull request stays open at the server. A stopping service waits
    # for its open requests to end (so nothing they deliver waits out an ack wait), so this
    # also bounds how long stopping takes.
    pull_expires_s: float = _DEFAULTS.pull_expires_s
    query_timeout_s: float = _DEFAULTS.query_timeout_s
    query_max_rows: int = _DEFAULTS.query_max_rows
    query_memory_limit: str = _DEFAULTS.query_memory_limit
    projector_batch: int = _DEFAULTS.projector_batch
    llm_plan_attempts: int = _DEFAULTS.llm_plan_attempts
    llm_plan_max_tokens: int = _DEFAULTS.llm_plan_max_tokens
    planner_prompts: Path | None = None
    # LLM providers (docs/llm.md): the primary endpoint, then the ordered fallbacks.
    # No base URL and no provider configured: no LLM, the rule-based strategies run.
    llm_endpoints: tuple[LlmEndpoint, ...] = ()
    llm_timeout_s: float = _DEFAULTS.llm_timeout_s
    llm_retries: int = _DEFAULTS.llm_retries
    llm_backoff_s: float = _DEFAULTS.llm_backoff_s
    llm_retry_after_max_s: float = _DEFAULTS.llm_retry_after_max_s
    llm_concurrency: int = _DEFAULTS.llm_concurrency
    llm_breaker_threshold: int = _DEFAULTS.llm_breaker_threshold
    llm_breaker_cooldown_s: float = _DEFAULTS.llm_breaker_cooldown_s
    llm_stream: bool = _DEFAULTS.llm_stream
    llm_prices: Path | None = None
    # Only so that a key file others may read is warned about (the key is in llm_endpoints).
    llm_api_key_file: Path | None = None
    react_max_steps: int = _DEFAULTS.react_max_steps
    memory_working_tokens: int = _DEFAULTS.memory_working_tokens
    memory_snapshot_every: int = _DEFAULTS.memory_snapshot_every
    embeddings_url: str | None = None
    embeddings_model: str = _DEFAULTS.embeddings_model
    embeddings_key: str | None = field(default=None, repr=False)
    # Security (docs/security.md). The embedded server requires credentials unless
    # AGORA_NATS_AUTH=off; a process finds its own under data_dir unless given them.
    nats_auth: bool = _DEFAULTS.nats_auth
    nats_user: str | None = None
    nats_password: str | None = field(default=None, repr=False)
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
    mcp_start_wait_s: float = _DEFAULTS.mcp_start_wait_s
    sandbox_cpu_s: int = _DEFAULTS.sandbox_cpu_s
    sandbox_memory_mb: int = _DEFAULTS.sandbox_memory_mb
    sandbox_processes: int = _DEFAULTS.sandbox_processes
    sandbox_wall_s: float = _DEFAULTS.sandbox_wall_s
    call_announce_after_s: float = _DEFAULTS.call_announce_after_s
    timer_threshold_s: float = _DEFAULTS.timer_threshold_s
    retry_backoff_s: float = _DEFAULTS.retry_backoff_s
    retry_backoff_max_s: float = _DEFAULTS.retry_backoff_max_s
    # The services' hot path (consume, ack, publish) over agora's lean wire client; False:
    # over nats-py, as it also falls back to when the wire client cannot connect (TLS).
    wire_client: bool = _DEFAULTS.wire_client
    endpoints: EndpointSettings = EndpointSettings()
    otlp: OtlpTarget = OtlpTarget()
    # The caller's W3C trace context (TRACEPARENT) that `agora goal` joins.
    traceparent: str | None = None
    otlp_metrics: OtlpTarget = OtlpTarget(signal="metrics")
    metric_export_interval_s: float = _DEFAULTS.metric_export_interval_ms / 1000
    trace_goal_max_events: int = _DEFAULTS.trace_goal_max_events
    trace_goal_max_age_s: float = _DEFAULTS.trace_goal_max_age_s

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``env`` (default: this process's environment), checked."""
        environ = process_environment() if env is None else env
        return cls.resolve(read_environment(environ), environ)

    @classmethod
    def resolve(cls, variables: Environment, environ: Mapping[str, str]) -> Settings:
        """Settings from the declared variables; ``environ`` names the variables that LLM
        fallbacks take their keys from (``api_key_env``)."""
        data_dir = (variables.data_dir or find_data_dir(Path.cwd())).expanduser()
        settings = cls(
            # Every variable whose setting has its name, as declared.
            **_same_named(cls, variables),
            nats_urls=comma_list(variables.nats_url) or None,
            data_dir=data_dir,
            workspace=_path(variables.workspace) or data_dir / "workspace",
            http_allow=comma_list(variables.http_allow),
            llm_endpoints=_llm_endpoints(variables, environ),
            endpoints=EndpointSettings(**_same_named(EndpointSettings, variables)),
            otlp=OtlpTarget(
                protocol=variables.otlp_traces_protocol or variables.otlp_protocol,
                endpoint=variables.otlp_traces_endpoint,
                base_endpoint=variables.otlp_endpoint,
            ),
            otlp_metrics=OtlpTarget(
                protocol=variables.otlp_metrics_protocol or variables.otlp_protocol,
                endpoint=variables.otlp_metrics_endpoint,
                base_endpoint=variables.otlp_endpoint,
                signal="metrics",
            ),
            metric_export_interval_s=variables.metric_export_interval_ms / 1000,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """What one variable's declaration cannot say: limits that depend on another."""
        if not 0 < self.max_intake_bytes <= self.max_message_bytes:
            raise ConfigurationError(
                f"AGORA_MAX_INTAKE_BYTES must be between 1 and {self.max_message_bytes}"
            )
        if not 0 < self.output_inline_bytes <= self.max_message_bytes // 4:
            raise ConfigurationError(
                f"AGORA_OUTPUT_INLINE_BYTES must be between 1 and {self.max_message_bytes // 4}"
            )

    def secret_files(self) -> list[tuple[Path, str]]:
        """(path, variable) of every configured file that holds a secret."""
        endpoints = self.endpoints
        return [
            (path, name)
            for path, name in (
                (self.nats_creds, "AGORA_NATS_CREDS"),
                (self.tls_key, "AGORA_TLS_KEY"),
                (self.llm_api_key_file, "AGORA_LLM_API_KEY_FILE"),
                (endpoints.mcp_token_file, "AGORA_MCP_TOKEN_FILE"),
                (endpoints.a2a_token_file, "AGORA_A2A_TOKEN_FILE"),
                (endpoints.agui_token_file, "AGORA_AGUI_TOKEN_FILE"),
                (endpoints.ui_token_file, "AGORA_UI_TOKEN_FILE"),
            )
            if path is not None
        ]

    def to_env(self) -> dict[str, str]:
        """These settings as variables: what a child process needs to match them. Every
        setting named as its variable is passed as declared, except what is per process."""
        env = {
            env_name(name): _as_variable(value)
            for name, value in _same_named(type(self), self).items()
            if name not in _PER_PROCESS and value is not None
        }
        env["AGORA_DATA_DIR"] = str(self.data_dir)
        env["AGORA_WORKSPACE"] = str(self.workspace)
        env["AGORA_HTTP_ALLOW"] = ",".join(self.http_allow)
        if self.nats_urls:
            env["AGORA_NATS_URL"] = ",".join(self.nats_urls)
        env.update(self._llm_env())
        return env

    def _llm_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
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


def _read_key_file(name: str, path: str | Path) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"{name}={str(path)!r} cannot be read: {exc.strerror}") from None


def _path(value: Path | None) -> Path | None:
    return value.expanduser() if value is not None else None


# Settings whose value is derived from their variable, not copied.
_DERIVED = frozenset({"data_dir", "workspace", "http_allow"})


def _same_named(target: type[Any], source: object) -> dict[str, Any]:
    """The value in ``source`` (the variables, or settings) of every one of ``target``'s
    fields that a variable of its name sets, paths expanded."""
    declared = Environment.model_fields
    values = {
        f.name: getattr(source, f.name)
        for f in fields(target)
        if f.name in declared and f.name not in _DERIVED
    }
    return {name: _path(v) if isinstance(v, Path) else v for name, v in values.items()}


# What each process has of its own: its NATS identity (the supervisor hands each service its
# credentials), the LLM key file (a child gets the key itself: it may not see the file).
_PER_PROCESS = frozenset(
    {"nats_user", "nats_password", "nats_creds", "llm_api_key_file", "traceparent"}
)


def _as_variable(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


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


def _llm_endpoints(variables: Environment, env: Mapping[str, str]) -> tuple[LlmEndpoint, ...]:
    """The primary endpoint from AGORA_LLM_*, then AGORA_LLM_FALLBACKS (a JSON list)."""
    endpoints: list[LlmEndpoint] = []
    if variables.llm_provider or variables.llm_base_url:
        key = variables.llm_api_key
        if variables.llm_api_key_file is not None:
            key = _read_key_file("AGORA_LLM_API_KEY_FILE", variables.llm_api_key_file)
        endpoints.append(
            _endpoint(
                "AGORA_LLM_*",
                variables.llm_provider,
                variables.llm_base_url,
                variables.llm_model,
                key,
            )
        )
    raw = variables.llm_fallbacks
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
