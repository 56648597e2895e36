"""Streams and durable consumers, declared as data and provisioned idempotently at start-up.

An existing stream or consumer whose configuration differs from what agora needs in what it
stores or delivers (subjects, limits, ack policy…) is never changed: start-up fails with a
message naming each difference. What follows agora's own code is updated in place, with a
warning: a service consumer's filters (its inputs, as its manifest declares them), the
planner's pin, atomic batches on the event stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from events.errors import ConfigurationError
from events.subjects import DLQ_STREAM, EVENTS_STREAM, INTAKE_STREAM
from infra.bus.outputs import provision_outputs
from infra.logging import get_logger
from infra.settings import MiB, Settings

__all__ = ["ConsumerSpec", "PinnedConsumerConfig", "provision", "stream_configs"]

log = get_logger("agora.streams")

DAY_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    description: str
    # A pinned priority group: one replica at a time gets every message (the others wait).
    priority_group: str | None = None


def stream_configs(settings: Settings) -> list[StreamConfig]:
    common: dict[str, Any] = {
        "storage": StorageType.FILE,
        "retention": RetentionPolicy.LIMITS,
        "discard": DiscardPolicy.OLD,
        "num_replicas": settings.stream_replicas,
        "duplicate_window": settings.duplicate_window_s,
    }
    return [
        StreamConfig(
            name=INTAKE_STREAM,
            description="agora: commands from outside (untrusted until the planner validates them)",
            subjects=["agora.intake.>"],
            max_msg_size=settings.max_message_bytes,
            max_age=7 * DAY_S,
            # Schedules (docs/schedules.md) are stored here, beside their target
            # agora.intake.goal: the server republishes them on time (nats-server 2.12+). They
            # are kept past max_age with a per-message TTL of "never".
            allow_msg_schedules=True,
            allow_msg_ttl=True,
            **common,
        ),
        StreamConfig(
            name=EVENTS_STREAM,
            description="agora: the immutable event log, the system of record",
            subjects=["agora.events.>"],
            max_msg_size=settings.max_message_bytes,
            deny_delete=True,
            deny_purge=True,
            allow_direct=True,
            # A lease holder's fenced decisions go out as atomic batches on a replicated stream.
            allow_atomic=True,
            **common,
        ),
        StreamConfig(
            name=DLQ_STREAM,
            description="agora: dead letters with their original bytes and the reason",
            subjects=["agora.dlq.>"],
            max_msg_size=4 * MiB,
            **common,
        ),
    ]


@dataclass
class PinnedConsumerConfig(ConsumerConfig):
    """A consumer with a ``pinned_client`` priority group (nats-server 2.11+), under the JSON
    API's names: nats-py has no fields for priority groups."""

    priority_groups: list[str] | None = None
    priority_policy: str | None = None
    priority_timeout: int | None = None  # nanoseconds without a pull request from the pinned one

    def priority(self) -> tuple[list[str], str, int]:
        return (
            self.priority_groups or [],
            self.priority_policy or "none",
            self.priority_timeout or 0,
        )


def consumer_config(spec: ConsumerSpec, settings: Settings, max_ack_pending: int) -> ConsumerConfig:
    single = len(spec.filter_subjects) == 1
    pinned = spec.priority_group is not None
    config_class = PinnedConsumerConfig if pinned else ConsumerConfig
    priority: dict[str, Any] = {}
    if spec.priority_group is not None:
        priority = {
            "priority_groups": [spec.priority_group],
            "priority_policy": "pinned_client",
            "priority_timeout": int(settings.pinned_timeout_s * 1e9),
        }
    return config_class(
        durable_name=spec.durable,
        description=spec.description,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_s,
        # Unlimited at the server: the consume loop counts deliveries itself and moves a message
        # to the DLQ at AGORA_MAX_DELIVER, so nothing is ever silently abandoned by the server.
        max_deliver=-1,
        max_ack_pending=max_ack_pending,
        filter_subject=spec.filter_subjects[0] if single else None,
        filter_subjects=None if single else list(spec.filter_subjects),
        **priority,
    )


_STREAM_FIELDS = (
    "subjects",
    "storage",
    "retention",
    "max_msg_size",
    "duplicate_window",
    "deny_delete",
    "deny_purge",
    "num_replicas",
)
_CONSUMER_FIELDS = ("ack_policy", "deliver_policy", "max_deliver", "ack_wait")


def _differences(kind: str, name: str, want: Any, have: Any, fields: Iterable[str]) -> list[str]:
    diffs = []
    for field in fields:
        wanted, actual = getattr(want, field), getattr(have, field)
        if isinstance(wanted, list):
            wanted, actual = sorted(wanted), sorted(actual or [])
        if wanted is not None and wanted != actual:
            diffs.append(f"{kind} {name}: {field} is {actual!r}, agora needs {wanted!r}")
    return diffs


def _filters(config: ConsumerConfig) -> list[str]:
    return sorted(
        config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
    )


async def provision_streams(js: JetStreamContext, settings: Settings) -> None:
    diffs: list[str] = []
    for config in stream_configs(settings):
        assert config.name is not None
        try:
            info = await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
            continue
        found = _differences("stream", config.name, config, info.config, _STREAM_FIELDS)
        diffs += found
        if found:
            continue
        # A stream from before atomic batches or schedules: enabling them changes nothing
        # stored (a server too old for them ignores them; schedules check the version).
        enable = {
            flag: True
            for flag in ("allow_atomic", "allow_msg_schedules", "allow_msg_ttl")
            if getattr(config, flag) and not getattr(info.config, flag)
        }
        if enable:
            await js.update_stream(info.config.evolve(**enable))
            log.warning("stream_updated", stream=config.name, **enable)
    _raise_if(diffs)
    await provision_outputs(js, settings)


async def provision(
    js: JetStreamContext,
    settings: Settings,
    consumers: Iterable[tuple[ConsumerSpec, int]] = (),
) -> None:
    """Create missing streams and consumers; fail on conflicting ones. Safe to run concurrently."""
    await provision_streams(js, settings)
    diffs: list[str] = []
    for spec, max_ack_pending in consumers:
        want = consumer_config(spec, settings, max_ack_pending)
        try:
            have = await _existing_config(js, spec)
        except NotFoundError:
            await js.add_consumer(spec.stream, want)
            continue
        found = _differences("consumer", spec.durable, want, have, _CONSUMER_FIELDS)
        diffs += found
        if found:
            continue
        if _filters(want) != _filters(have):
            # A service's inputs changed with a new version: its own consumer follows them,
            # keeping its position (what it already handled stays handled).
            await js.add_consumer(spec.stream, want)
            log.warning(
                "consumer_filters_updated",
                consumer=f"{spec.stream}/{spec.durable}",
                was=_filters(have),
                now=_filters(want),
            )
        elif isinstance(want, PinnedConsumerConfig):
            await _update_priority(js, spec, want, have)
    _raise_if(diffs)


async def _existing_config(js: JetStreamContext, spec: ConsumerSpec) -> ConsumerConfig:
    if spec.priority_group is None:
        config: ConsumerConfig = (await js.consumer_info(spec.stream, spec.durable)).config
        return config
    # Through the JSON API: nats-py's ConsumerInfo drops the priority fields.
    reply = await js._nc.request(f"$JS.API.CONSUMER.INFO.{spec.stream}.{spec.durable}", b"")
    info = json.loads(reply.data)
    error = info.get("error")
    if error is not None:
        if error.get("err_code") == _CONSUMER_NOT_FOUND:
            raise NotFoundError
        raise ConfigurationError(f"consumer {spec.stream}/{spec.durable}: {error}")
    pinned: PinnedConsumerConfig = PinnedConsumerConfig.from_response(info["config"])
    return pinned


async def _update_priority(
    js: JetStreamContext, spec: ConsumerSpec, want: PinnedConsumerConfig, have: ConsumerConfig
) -> None:
    """Pinning is agora's to set (a consumer from before it, a new priority timeout): it
    changes who receives messages, never which, so it is updated in place."""
    had = have.priority() if isinstance(have, PinnedConsumerConfig) else ([], "none", 0)
    if had == want.priority():
        return
    await js.add_consumer(spec.stream, want)
    log.warning(
        "consumer_priority_updated",
        consumer=f"{spec.stream}/{spec.durable}",
        was=had,
        now=want.priority(),
    )


_CONSUMER_NOT_FOUND = 10014


def _raise_if(diffs: list[str]) -> None:
    if diffs:
        raise ConfigurationError(
            "existing NATS configuration conflicts with agora's:\n  "
            + "\n  ".join(diffs)
            + "\nchange the AGORA_* settings to match, or update/remove the stream or consumer"
        )
