"""Service counters and how ``agora status`` adds the replicas' counters up."""

from __future__ import annotations

import pytest

from infra.bus.consume import Delivery
from infra.clients.status import _problems, _services
from infra.platform.stats import ServiceCounters


def _delivery(num_delivered: int) -> Delivery:
    return Delivery(
        reply="$JS.ACK.AGORA_EVENTS.executor.1.1.1.1700000000000000000.0",
        subject="agora.events.g-1.task_scheduled",
        data=b"",
        headers={},
        stream_seq=1,
        num_delivered=num_delivered,
    )


async def test_track_counts_handled_failed_redelivered_and_in_flight() -> None:
    now = [100.0]
    counters = ServiceCounters("executor", clock=lambda: now[0])
    during: list[int] = []

    async def handler(delivery: Delivery) -> None:
        during.append(counters.consumers["AGORA_EVENTS/executor"].in_flight)
        if delivery.num_delivered == 2:
            raise RuntimeError("boom")

    tracked = counters.track("AGORA_EVENTS", "executor", handler)
    await tracked(_delivery(1))
    with pytest.raises(RuntimeError):
        await tracked(_delivery(2))
    await tracked(_delivery(3))
    now[0] = 112.5

    snapshot = counters.snapshot()
    assert snapshot == {
        "service": "executor",
        "uptime_s": 12.5,
        "consumers": {
            "AGORA_EVENTS/executor": {
                "handled": 2,
                "failed": 1,
                "redelivered": 2,
                "in_flight": 0,
                "last_error": "RuntimeError: boom",
            }
        },
    }
    assert during == [1, 1, 1]


def _reply(name: str, handled: int, in_flight: int = 0) -> dict[str, object]:
    counts = {"handled": handled, "failed": 0, "redelivered": 0, "in_flight": in_flight}
    return {
        "name": f"agora-{name}",
        "endpoints": [
            {"name": "stats", "data": {"uptime_s": 5, "consumers": {f"E/{name}": counts}}}
        ],
    }


def test_replicas_are_added_up_and_missing_services_are_problems() -> None:
    services = _services(
        [_reply("executor", 3, 1), _reply("executor", 4), _reply("planner", 9), {"name": "x"}]
    )
    assert services["executor"]["replicas"] == 2
    assert services["executor"]["consumers"]["E/executor"] == {
        "handled": 7,
        "failed": 0,
        "redelivered": 0,
        "in_flight": 1,
    }
    assert services["memory"]["replicas"] == 0
    assert "x" not in services  # not an agora micro service
    status = {
        "services": services,
        "consumers": [{"stream": "S", "consumer": "c", "provisioned": False}],
        "dead_letters": {"records": 3, "redriven": 1},
    }
    assert _problems(status) == [
        "no memory process answers",
        "no evaluator process answers",
        "no projector process answers",
        "consumer S/c is not provisioned",
        "2 dead letter(s) not redriven: `agora dlq list`, then redrive or purge",
    ]
