"""Settings from ``AGORA_*`` environment variables. Every default serves a first-time user."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from events.errors import ConfigurationError

__all__ = ["Settings"]

Durability = Literal["fsync", "os"]
KiB = 1024
MiB = 1024 * KiB


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


@dataclass(frozen=True, slots=True)
class Settings:
    # None: agora starts (or finds) its embedded nats-server under data_dir.
    nats_urls: tuple[str, ...] | None = None
    # The embedded server's client port on 127.0.0.1; 0 picks any free port.
    nats_port: int = 4222
    data_dir: Path = Path(".agora")
    durability: Durability = "fsync"
    log_level: str = "warning"
    log_format: Literal["json", "console"] = "json"
    workspace: Path = Path(".agora/workspace")
    max_intake_bytes: int = 256 * KiB
    max_message_bytes: int = 1 * MiB
    duplicate_window_s: float = 120.0
    ack_wait_s: float = 30.0
    max_deliver: int = 8
    concurrency: int = 64
    executor_concurrency: int = 512
    stream_replicas: int = 1
    drain_timeout_s: float = 10.0
    query_timeout_s: float = 5.0
    query_max_rows: int = 10_000
    query_memory_limit: str = "512MB"
    projector_batch: int = 10_000
    # The LLM planner (used when an LLM is configured): requests per plan, tokens per request,
    # and an optional directory of prompt templates overriding the packaged ones.
    llm_plan_attempts: int = 3
    llm_plan_max_tokens: int = 4096
    planner_prompts: Path | None = None

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
        data_dir = Path(env.get("AGORA_DATA_DIR", ".agora")).expanduser()
        settings = cls(
            nats_urls=tuple(u.strip() for u in urls.split(",") if u.strip()) or None,
            data_dir=data_dir,
            nats_port=_int(env, "AGORA_NATS_PORT", 4222),
            durability="fsync" if durability == "fsync" else "os",
            log_level=env.get("AGORA_LOG_LEVEL", "warning").strip().lower(),
            log_format="json" if log_format == "json" else "console",
            workspace=Path(env.get("AGORA_WORKSPACE", str(data_dir / "workspace"))).expanduser(),
            max_intake_bytes=_int(env, "AGORA_MAX_INTAKE_BYTES", 256 * KiB),
            duplicate_window_s=_float(env, "AGORA_DUPLICATE_WINDOW_S", 120.0),
            ack_wait_s=_float(env, "AGORA_ACK_WAIT_S", 30.0),
            max_deliver=_int(env, "AGORA_MAX_DELIVER", 8),
            concurrency=_int(env, "AGORA_CONCURRENCY", 64),
            executor_concurrency=_int(env, "AGORA_EXECUTOR_CONCURRENCY", 512),
            stream_replicas=_int(env, "AGORA_STREAM_REPLICAS", 1),
            drain_timeout_s=_float(env, "AGORA_DRAIN_TIMEOUT_S", 10.0),
            query_timeout_s=_float(env, "AGORA_QUERY_TIMEOUT_S", 5.0),
            query_max_rows=_int(env, "AGORA_QUERY_MAX_ROWS", 10_000),
            query_memory_limit=env.get("AGORA_QUERY_MEMORY_LIMIT", "512MB"),
            projector_batch=_int(env, "AGORA_PROJECTOR_BATCH", 10_000),
            llm_plan_attempts=_int(env, "AGORA_LLM_PLAN_ATTEMPTS", 3),
            llm_plan_max_tokens=_int(env, "AGORA_LLM_PLAN_MAX_TOKENS", 4096),
            planner_prompts=Path(env["AGORA_PLANNER_PROMPTS"]).expanduser()
            if env.get("AGORA_PLANNER_PROMPTS")
            else None,
        )
        settings.check()
        return settings

    def check(self) -> None:
        if not 0 < self.max_intake_bytes <= self.max_message_bytes:
            raise ConfigurationError(
                f"AGORA_MAX_INTAKE_BYTES must be between 1 and {self.max_message_bytes}"
            )
        if not 0 <= self.nats_port <= 65535:
            raise ConfigurationError("AGORA_NATS_PORT must be between 0 and 65535")
        if self.max_deliver < 1:
            raise ConfigurationError("AGORA_MAX_DELIVER must be at least 1")
        if self.concurrency < 1 or self.executor_concurrency < 1:
            raise ConfigurationError("AGORA_CONCURRENCY values must be at least 1")
        if self.llm_plan_attempts < 1 or self.llm_plan_max_tokens < 1:
            raise ConfigurationError(
                "AGORA_LLM_PLAN_ATTEMPTS and AGORA_LLM_PLAN_MAX_TOKENS must be at least 1"
            )

    def to_env(self) -> dict[str, str]:
        """These settings as ``AGORA_*`` variables: what a child process needs to match them."""
        env = {
            "AGORA_DATA_DIR": str(self.data_dir),
            "AGORA_NATS_PORT": str(self.nats_port),
            "AGORA_DURABILITY": self.durability,
            "AGORA_LOG_LEVEL": self.log_level,
            "AGORA_LOG_FORMAT": self.log_format,
            "AGORA_WORKSPACE": str(self.workspace),
            "AGORA_MAX_INTAKE_BYTES": str(self.max_intake_bytes),
            "AGORA_DUPLICATE_WINDOW_S": str(self.duplicate_window_s),
            "AGORA_ACK_WAIT_S": str(self.ack_wait_s),
            "AGORA_MAX_DELIVER": str(self.max_deliver),
            "AGORA_CONCURRENCY": str(self.concurrency),
            "AGORA_EXECUTOR_CONCURRENCY": str(self.executor_concurrency),
            "AGORA_STREAM_REPLICAS": str(self.stream_replicas),
            "AGORA_DRAIN_TIMEOUT_S": str(self.drain_timeout_s),
            "AGORA_QUERY_TIMEOUT_S": str(self.query_timeout_s),
            "AGORA_QUERY_MAX_ROWS": str(self.query_max_rows),
            "AGORA_QUERY_MEMORY_LIMIT": self.query_memory_limit,
            "AGORA_PROJECTOR_BATCH": str(self.projector_batch),
        }
        env["AGORA_LLM_PLAN_ATTEMPTS"] = str(self.llm_plan_attempts)
        env["AGORA_LLM_PLAN_MAX_TOKENS"] = str(self.llm_plan_max_tokens)
        if self.planner_prompts is not None:
            env["AGORA_PLANNER_PROMPTS"] = str(self.planner_prompts)
        if self.nats_urls:
            env["AGORA_NATS_URL"] = ",".join(self.nats_urls)
        return env

    @property
    def embedded(self) -> bool:
        return self.nats_urls is None

    @property
    def nats_dir(self) -> Path:
        return self.data_dir / "nats"
