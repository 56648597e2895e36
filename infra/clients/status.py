"""``agora status``: one picture of a running platform, gathered over NATS.

- each service consumer's lag (``num_pending``), ack pending and redeliveries, from JetStream;
- the dead letters (records, and how many were redriven);
- the projector's checkpoint against the event log's last sequence;
- every service process's own counters (``$SRV.STATS``, see infra/platform/stats.py);
- the nats-server: version and JetStream usage from the JetStream API, and from its
  monitoring port (when known) connections, uptime and memory;
- JetStream storage against every limit that applies, and consumers that stalled
  (infra/clients/health.py decides what is a problem).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from events.subjects import DLQ_STREAM, EVENTS_STREAM, INTAKE_STREAM
from infra.bus.redrive import REDRIVE_PREFIX, redrive_consumer
from infra.clients.health import StorageLimit, stalled_consumers, storage_problems
from infra.clients.query import QueryFailedError, projector_status
from infra.platform.embedded import DISCOVERY_FILE
from infra.platform.stats import MICRO_PREFIX, collect_stats
from infra.platform.topology import SERVICE_CONSUMERS
from infra.settings import Settings

__all__ = ["EXPECTED_SERVICES", "STALL_AFTER_S", "gather_status", "monitor_url_of", "store_dir_of"]

EXPECTED_SERVICES = (*SERVICE_CONSUMERS, "projector")
COUNTERS = ("handled", "failed", "redelivered", "in_flight")
# Work waiting and nothing acknowledged for this long: the consumer is stalled.
STALL_AFTER_S = 60.0
# The room a store needs to take one more event: the default largest message.
ONE_MESSAGE_BYTES = 1024 * 1024


def monitor_url_of(settings: Settings) -> str | None:
    """The embedded server's monitoring URL, from its discovery file."""
    if not settings.embedded:
        return None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        info = json.loads(Path(settings.nats_dir / DISCOVERY_FILE).read_text())
        return str(info.get("monitor") or "") or None
    return None


def store_dir_of(settings: Settings) -> Path | None:
    """The embedded server's JetStream store on this machine, if there is one."""
    store = settings.nats_dir / "jetstream"
    return store if settings.embedded and store.is_dir() else None


def _consumer_specs() -> Iterable[tuple[str, str, str]]:
    """(service, stream, durable) of every durable consumer agora's services use."""
    for service, specs in SERVICE_CONSUMERS.items():
        for spec in specs:
            yield service, spec.stream, spec.durable
        for durable in dict.fromkeys(spec.durable for spec in specs):
            yield service, DLQ_STREAM, redrive_consumer(durable)


async def _consumers(nc: NatsClient) -> list[dict[str, Any]]:
    js = nc.jetstream()
    rows = []
    for service, stream, durable in _consumer_specs():
        row: dict[str, Any] = {"service": service, "stream": stream, "consumer": durable}
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:
            row["provisioned"] = False
        else:
            row |= {
                "provisioned": True,
                "pending": info.num_pending or 0,
                "ack_pending": info.num_ack_pending or 0,
                "redelivered": info.num_redelivered or 0,
                "waiting": info.num_waiting or 0,
                "delivered_seq": info.delivered.stream_seq if info.delivered else 0,
                "ack_floor_seq": info.ack_floor.stream_seq if info.ack_floor else 0,
                "last_ack": info.ack_floor.last_active if info.ack_floor else None,
                "last_delivered": info.delivered.last_active if info.delivered else None,
                "created": info.created,
            }
        rows.append(row)
    return rows


async def _dead_letters(nc: NatsClient) -> dict[str, Any]:
    js = nc.jetstream()
    records = await js.stream_info(DLQ_STREAM, subjects_filter="agora.dlq.*")
    copies = await js.stream_info(DLQ_STREAM, subjects_filter=f"{REDRIVE_PREFIX}.>")
    by_consumer = {
        subject.rsplit(".", 1)[1]: count
        for subject, count in (records.state.subjects or {}).items()
    }
    return {
        "records": sum(by_consumer.values()),
        "by_consumer": by_consumer,
        "redriven": len(copies.state.subjects or {}),
        "messages": records.state.messages,
        "bytes": records.state.bytes,
    }


async def _projector(nc: NatsClient, events_last_seq: int) -> dict[str, Any]:
    try:
        status = await projector_status(nc)
    except QueryFailedError as exc:
        return {"running": False, "error": str(exc), "events_last_seq": events_last_seq}
    applied = int(str(status.get("last_seq", 0)))
    return {
        "running": True,
        "applied_seq": applied,
        "events_last_seq": events_last_seq,
        "lag": max(0, events_last_seq - applied),
        "rebuilding": bool(status.get("rebuilding")),
    }


def _services(replies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each service's processes, their counters added up per consumer."""
    services: dict[str, dict[str, Any]] = {
        name: {"replicas": 0, "uptime_s": [], "consumers": {}} for name in EXPECTED_SERVICES
    }
    for reply in replies:
        micro = str(reply.get("name", ""))
        if not micro.startswith(MICRO_PREFIX):
            continue  # another application's micro service on the same NATS
        name = micro.removeprefix(MICRO_PREFIX)
        data = next((e.get("data") for e in reply.get("endpoints") or [] if e.get("data")), None)
        entry = services.setdefault(name, {"replicas": 0, "uptime_s": [], "consumers": {}})
        entry["replicas"] += 1
        if not isinstance(data, dict):
            continue
        entry["uptime_s"].append(data.get("uptime_s", 0))
        for consumer, counts in (data.get("consumers") or {}).items():
            total = entry["consumers"].setdefault(consumer, dict.fromkeys(COUNTERS, 0))
            for counter in COUNTERS:
                total[counter] += int(counts.get(counter, 0))
            if counts.get("last_error"):
                total["last_error"] = counts["last_error"]
    return services


def _version(nc: NatsClient) -> str:
    """The server's version as its INFO gave it, e.g. ``2.15.1``."""
    version = nc.connected_server_version
    text = f"{version.major}.{version.minor}.{version.patch}"
    return f"{text}-{version.dev}" if version.dev else text


async def _server(nc: NatsClient, monitor_url: str | None) -> dict[str, Any]:
    account = await nc.jetstream().account_info()
    server: dict[str, Any] = {
        "url": nc.connected_url.netloc if nc.connected_url else None,
        "version": _version(nc),
        "jetstream": {
            "memory_bytes": account.memory,
            "storage_bytes": account.storage,
            "streams": account.streams,
            "consumers": account.consumers,
            "api_requests": account.api.total,
            "api_errors": account.api.errors,
            "max_storage_bytes": account.limits.max_storage,
        },
    }
    if monitor_url:
        server["monitor"] = monitor_url
        try:
            async with httpx.AsyncClient(timeout=2.0) as http:
                varz = (await http.get(f"{monitor_url.rstrip('/')}/varz")).json()
        except (httpx.HTTPError, ValueError) as exc:
            server["monitor_error"] = f"{type(exc).__name__}: {exc}"
        else:
            server |= {
                "server_name": varz.get("server_name"),
                "version": varz.get("version", server["version"]),
                "uptime": varz.get("uptime"),
                "connections": varz.get("connections"),
                "total_connections": varz.get("total_connections"),
                "slow_consumers": varz.get("slow_consumers"),
                "mem_bytes": varz.get("mem"),
                "cpu_percent": varz.get("cpu"),
                "in_msgs": varz.get("in_msgs"),
                "out_msgs": varz.get("out_msgs"),
            }
            js_varz = varz.get("jetstream") or {}
            server["jetstream"] |= {
                "server_max_storage_bytes": (js_varz.get("config") or {}).get("max_storage"),
                "server_storage_bytes": (js_varz.get("stats") or {}).get("storage"),
            }
    return server


async def _storage_limits(
    nc: NatsClient, server: dict[str, Any], store_dir: Path | None
) -> list[StorageLimit]:
    js_usage = server["jetstream"]
    limits = [
        StorageLimit(
            "JetStream account storage", js_usage["storage_bytes"], js_usage["max_storage_bytes"]
        )
    ]
    if js_usage.get("server_max_storage_bytes"):
        limits.append(
            StorageLimit(
                "the nats-server's JetStream store",
                int(js_usage.get("server_storage_bytes") or js_usage["storage_bytes"]),
                int(js_usage["server_max_storage_bytes"]),
            )
        )
    js = nc.jetstream()
    for stream in (EVENTS_STREAM, DLQ_STREAM, INTAKE_STREAM):
        with contextlib.suppress(NotFoundError):
            info = await js.stream_info(stream)
            limits.append(
                StorageLimit(f"stream {stream}", info.state.bytes, info.config.max_bytes or -1)
            )
    if store_dir is not None:
        disk = shutil.disk_usage(store_dir)
        limits.append(StorageLimit(f"the disk of {store_dir}", disk.used, disk.total))
    return limits


def _problems(
    status: dict[str, Any],
    limits: Iterable[StorageLimit] = (),
    *,
    now: datetime | None = None,
    stall_after_s: float = STALL_AFTER_S,
) -> list[str]:
    problems = storage_problems(limits, room_bytes=ONE_MESSAGE_BYTES)
    when = now or datetime.now(UTC)
    problems += stalled_consumers(status["consumers"], now=when, stall_after_s=stall_after_s)
    problems += [
        f"no {name} process answers"
        for name, entry in status["services"].items()
        if name in EXPECTED_SERVICES and entry["replicas"] == 0
    ]
    problems += [
        f"consumer {row['stream']}/{row['consumer']} is not provisioned"
        for row in status["consumers"]
        if not row["provisioned"]
    ]
    # Approximate: a copy outlives its record when a purge removed the record only.
    unresolved = max(0, status["dead_letters"]["records"] - status["dead_letters"]["redriven"])
    if unresolved > 0:
        problems.append(
            f"{unresolved} dead letter(s) not redriven: `agora dlq list`, then redrive or purge"
        )
    return problems


async def gather_status(
    nc: NatsClient,
    *,
    monitor_url: str | None = None,
    stats_timeout_s: float = 1.0,
    store_dir: Path | None = None,
    stall_after_s: float = STALL_AFTER_S,
    now: datetime | None = None,
) -> dict[str, Any]:
    events = await nc.jetstream().stream_info(EVENTS_STREAM)
    status: dict[str, Any] = {
        "server": await _server(nc, monitor_url),
        "events": {"messages": events.state.messages, "last_seq": events.state.last_seq},
        "consumers": await _consumers(nc),
        "dead_letters": await _dead_letters(nc),
        "projector": await _projector(nc, events.state.last_seq),
        "services": _services(await collect_stats(nc, timeout_s=stats_timeout_s)),
    }
    limits = await _storage_limits(nc, status["server"], store_dir)
    status["storage"] = [limit.as_json() for limit in limits if limit.limit > 0]
    status["problems"] = _problems(status, limits, now=now, stall_after_s=stall_after_s)
    return status
