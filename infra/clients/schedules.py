"""Schedules on the intake stream: add, list, show, remove (docs/schedules.md).

A schedule is a stored message that nats-server itself republishes on time, so nothing of
agora's runs a timer: ``agora.intake.schedule.<name>`` holds the goal command as its body and
the server's schedule headers (see :mod:`events.schedules`). Adding and removing are
JetStream publishes on that subject, reading is the stream's own message API, which is what
the ``client`` identity may do on the intake stream anyway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js.errors import APIError, NotFoundError

from events.schedules import (
    PATTERN_HEADER,
    SCHEDULE_HEADER,
    SCHEDULE_PREFIX,
    TIME_ZONE_HEADER,
    ScheduleError,
    ScheduleSpec,
    schedule_name,
    schedule_subject,
    server_version_problem,
)
from events.subjects import INTAKE_STREAM

__all__ = ["Schedule", "add_schedule", "get_schedule", "list_schedules", "remove_schedule"]

# A schedule outlives the intake stream's max_age: a negative TTL is kept until removed.
_KEEP = "never"
# What a removal leaves on the subject: a roll-up that purges the schedule, itself gone soon.
_TOMBSTONE_TTL = "1s"
_EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    pattern: str
    time_zone: str | None
    goal: Mapping[str, Any]
    stored_at: datetime
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "schedule": self.pattern,
            "time_zone": self.time_zone,
            "goal": dict(self.goal),
            "stored_at": self.stored_at.isoformat(),
            "seq": self.seq,
        }


def _version(nc: NatsClient) -> tuple[int, int, int]:
    version = nc.connected_server_version
    return (version.major, version.minor, version.patch)


async def add_schedule(
    nc: NatsClient,
    name: str,
    spec: ScheduleSpec,
    goal: Mapping[str, Any],
    *,
    replace: bool = False,
) -> Schedule:
    """Store a schedule; refused on a server too old for ``spec``, for a goal that names its
    own ids (each firing gets its own), and for a name in use unless ``replace``."""
    subject = schedule_subject(name)
    for field in ("command_id", "goal_id"):
        if field in goal:
            raise ScheduleError(
                f"a scheduled goal must not carry {field}: each firing gets its own, derived "
                "from the schedule's name and the firing"
            )
    problem = server_version_problem(spec.kind, _version(nc))
    if problem is not None:
        raise ScheduleError(problem)
    js = nc.jetstream()
    info = await js.stream_info(INTAKE_STREAM)
    if not info.config.allow_msg_schedules:
        raise ScheduleError(
            f"stream {INTAKE_STREAM} does not allow schedules yet: start the platform "
            "(agora up) with this version once, and it enables them"
        )
    last = await _last(nc, subject)
    if last is not None and last.headers.get(SCHEDULE_HEADER) and not replace:
        raise ScheduleError(f"schedule {name!r} exists: remove it first, or add it with --replace")
    headers = {
        **spec.headers(),
        "Nats-TTL": _KEEP,
        # Two adds racing for one name: the second is refused, not silently merged.
        _EXPECTED_LAST: str(last.seq if last is not None else 0),
    }
    body = json.dumps(dict(goal), separators=(",", ":")).encode()
    try:
        await js.publish(subject, body, headers=headers)
    except APIError as exc:
        raise ScheduleError(f"the server refused schedule {name!r}: {exc.description}") from exc
    found = await get_schedule(nc, name)
    if found is None:
        raise ScheduleError(f"schedule {name!r} was stored but is gone already")
    return found


async def list_schedules(nc: NatsClient) -> list[Schedule]:
    info = await nc.jetstream().stream_info(INTAKE_STREAM, subjects_filter=f"{SCHEDULE_PREFIX}>")
    schedules = []
    for subject in sorted(info.state.subjects or {}):
        name = schedule_name(subject)
        if name is None:
            continue
        found = await get_schedule(nc, name)
        if found is not None:
            schedules.append(found)
    return schedules


async def get_schedule(nc: NatsClient, name: str) -> Schedule | None:
    last = await _last(nc, schedule_subject(name))
    if last is None or not last.headers.get(SCHEDULE_HEADER):
        return None
    try:
        goal = json.loads(last.data)
    except ValueError:
        goal = {"unreadable": last.data.decode(errors="replace")}
    return Schedule(
        name=name,
        pattern=last.headers.get(PATTERN_HEADER) or last.headers[SCHEDULE_HEADER],
        time_zone=last.headers.get(TIME_ZONE_HEADER),
        goal=goal if isinstance(goal, dict) else {"goal": goal},
        stored_at=last.time,
        seq=last.seq,
    )


async def remove_schedule(nc: NatsClient, name: str) -> bool:
    """Remove a schedule (it fires no more); False when there was none."""
    subject = schedule_subject(name)
    last = await _last(nc, subject)
    if last is None or not last.headers.get(SCHEDULE_HEADER):
        return False
    # A roll-up of the subject purges the schedule message, and with it the server's timer.
    await nc.jetstream().publish(
        subject,
        b"",
        headers={
            "Nats-Rollup": "sub",
            "Nats-TTL": _TOMBSTONE_TTL,
            _EXPECTED_LAST: str(last.seq),
        },
    )
    return True


@dataclass(frozen=True, slots=True)
class _Stored:
    seq: int
    data: bytes
    headers: Mapping[str, str]
    time: datetime


async def _last(nc: NatsClient, subject: str) -> _Stored | None:
    try:
        msg = await nc.jetstream().get_last_msg(INTAKE_STREAM, subject)
    except NotFoundError:
        return None
    assert msg.seq is not None
    assert msg.time is not None
    return _Stored(seq=msg.seq, data=msg.data or b"", headers=msg.headers or {}, time=msg.time)
