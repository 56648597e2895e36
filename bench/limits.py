"""The physical limit: what the NATS traffic alone costs, with no agora code in the way.

Two measurements with plain nats-py on the embedded nats-server, the same client library and
server the platform uses:

- publish: JetStream publishes of event-sized messages with ``Nats-Msg-Id``, each awaited for
  its acknowledgement, ``window`` at a time (how EventPublisher sends a handler's outputs);
- consume: a durable pull consumer, messages fetched in batches and each acked (what every
  service's consume loop does per input).

Each reports messages per second and CPU microseconds per message, split between nats-server
and the Python client. A goal of the throughput scenario stores ~25 events and delivers ~14
of them to a service (each acked), so these per-message figures bound goals/s from above
whatever agora's own code does.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from bench.harness import Row
from bench.platform import cpu_seconds
from infra.platform.embedded import EmbeddedNats

__all__ = ["run_limits"]

PAYLOAD = b'{"type":"task_completed","goal_id":"b-1","output":"step of goal 1"}' + b" " * 400


def _cpu(server_pid: int) -> dict[str, float]:
    return cpu_seconds({"server": server_pid, "client": os.getpid()})


def _row(name: str, metric: str, messages: int, seconds: float, cpu: dict[str, float]) -> Row:
    per_msg = {k: round(v * 1e6 / messages, 1) for k, v in cpu.items()}
    details = {
        "messages": messages,
        "seconds": round(seconds, 2),
        "cpu_us_per_msg_server": per_msg["server"],
        "cpu_us_per_msg_client": per_msg["client"],
    }
    return Row(name, metric, messages / seconds, "msgs/s", "no agora code: the ceiling", details)


async def run_limits(
    messages: int = 100_000, window: int = 100, durability: str = "os"
) -> list[Row]:
    with (
        tempfile.TemporaryDirectory(prefix="agora-bench-") as tmp,
        EmbeddedNats(Path(tmp) / "nats", durability=durability, port=-1) as server,
    ):
        assert server.pid is not None
        nc = await nats.connect(server.url, pending_size=256 * 1024 * 1024)
        js = nc.jetstream()
        try:
            await js.add_stream(
                StreamConfig(
                    name="LIMITS",
                    subjects=["limits.>"],
                    storage=StorageType.FILE,
                    duplicate_window=120.0,
                )
            )
            before, started = _cpu(server.pid), time.perf_counter()
            for first in range(0, messages, window):
                acks = [
                    await js.publish_async(
                        f"limits.g{n % 1000}.task_completed",
                        PAYLOAD,
                        headers={"Nats-Msg-Id": f"m-{n}"},
                    )
                    for n in range(first, min(first + window, messages))
                ]
                await asyncio.gather(*acks)
            publish_s = time.perf_counter() - started
            after = _cpu(server.pid)
            publish_cpu = {k: after[k] - before[k] for k in after}

            await js.add_consumer(
                "LIMITS", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT)
            )
            sub = await js.pull_subscribe_bind("c", "LIMITS")
            before, started = _cpu(server.pid), time.perf_counter()
            seen = 0
            while seen < messages:
                for msg in await sub.fetch(min(window, messages - seen), timeout=5):
                    await msg.ack()
                    seen += 1
            await nc.flush()
            consume_s = time.perf_counter() - started
            after = _cpu(server.pid)
            consume_cpu = {k: after[k] - before[k] for k in after}
        finally:
            await nc.close()
    name = f"physical limit, nats-py on nats-server ({durability})"
    return [
        _row(name, f"JetStream publish + ack, {window} at once", messages, publish_s, publish_cpu),
        _row(name, f"pull consume + ack, batches of {window}", messages, consume_s, consume_cpu),
    ]
