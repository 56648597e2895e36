"""Schedules: goals that nats-server submits on time. Pure: parsing, subjects, firing ids.

A schedule is one stored message on ``agora.intake.schedule.<name>`` in the intake stream,
carrying the goal command as its body and the server's schedule headers (``Nats-Schedule``,
``Nats-Schedule-Target: agora.intake.goal``, ``Nats-Schedule-Time-Zone``). The server
republishes the body to ``agora.intake.goal`` on time and stamps each copy with
``Nats-Scheduler`` (the schedule's subject) and ``Nats-Schedule-Next`` (when it fires next, or
``purge`` for a one-shot). No header names the firing's own time, so a firing is identified by
the schedule's name and the next time the server stamped on it (for a one-shot, by its ``@at``
time, which agora copies into a header of its own): both are fixed when the server stores the
firing, and each firing of a schedule has a different one. See docs/schedules.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from events.errors import AgoraError
from events.instants import parse_instant, utc_text
from events.subjects import INTAKE_GOAL

__all__ = [
    "AT_HEADER",
    "NEXT_HEADER",
    "PATTERN_HEADER",
    "SCHEDULER_HEADER",
    "SCHEDULE_HEADER",
    "SCHEDULE_PREFIX",
    "TARGET_HEADER",
    "TIME_ZONE_HEADER",
    "ScheduleError",
    "ScheduleSpec",
    "firing_command_id",
    "firing_of",
    "parse_schedule",
    "schedule_name",
    "schedule_subject",
    "server_version_problem",
]

SCHEDULE_PREFIX = "agora.intake.schedule."
# The server's headers (ADR-51), on the stored schedule and on each firing.
SCHEDULE_HEADER = "Nats-Schedule"
TARGET_HEADER = "Nats-Schedule-Target"
TIME_ZONE_HEADER = "Nats-Schedule-Time-Zone"
SCHEDULER_HEADER = "Nats-Scheduler"
NEXT_HEADER = "Nats-Schedule-Next"
ONE_SHOT_NEXT = "purge"
# agora's own, copied by the server onto every firing: the pattern as the user gave it, and a
# one-shot's time (a one-shot's firings carry ``purge`` where a repeating one has its next time).
PATTERN_HEADER = "Agora-Schedule"
AT_HEADER = "Agora-Schedule-At"

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Kind = Literal["at", "every", "cron"]
# The nats-server version each kind needs: one-shots came in 2.12, intervals, cron and time
# zones in 2.14.
REQUIRED_VERSION: dict[Kind, tuple[int, int, int]] = {
    "at": (2, 12, 0),
    "every": (2, 14, 0),
    "cron": (2, 14, 0),
}


class ScheduleError(AgoraError):
    """A schedule that cannot be stored, with the reason."""


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    kind: Kind
    # The Nats-Schedule value the server reads: "@at <RFC 3339>", "@every <duration>", or a
    # six-field cron line (seconds first).
    pattern: str
    time_zone: str | None = None
    at: datetime | None = None

    def headers(self) -> dict[str, str]:
        """The headers of the stored schedule message (its body is the goal command)."""
        headers = {
            SCHEDULE_HEADER: self.pattern,
            TARGET_HEADER: INTAKE_GOAL,
            PATTERN_HEADER: self.pattern,
        }
        if self.time_zone is not None:
            headers[TIME_ZONE_HEADER] = self.time_zone
        if self.at is not None:
            headers[AT_HEADER] = utc_text(self.at)
        return headers


def schedule_subject(name: str) -> str:
    if not _NAME.match(name):
        raise ScheduleError(
            f"schedule name {name!r} is not valid: use 1-64 letters, digits, '-' or '_'"
        )
    return SCHEDULE_PREFIX + name


def schedule_name(subject: str) -> str | None:
    """The schedule's name from its subject (a firing's ``Nats-Scheduler``), else None."""
    if not subject.startswith(SCHEDULE_PREFIX):
        return None
    name = subject[len(SCHEDULE_PREFIX) :]
    return name if _NAME.match(name) else None


def parse_schedule(
    *,
    now: datetime,
    cron: str | None = None,
    every: str | None = None,
    at: str | None = None,
    time_zone: str | None = None,
) -> ScheduleSpec:
    """Exactly one of ``cron``, ``every`` or ``at``; a time zone only with cron (the server
    reads ``@at`` and ``@every`` in UTC). An ``@at`` that is not in the future is refused."""
    given = [value for value in (cron, every, at) if value is not None]
    if len(given) != 1:
        raise ScheduleError("give exactly one of --cron, --every or --at")
    if time_zone is not None and cron is None:
        raise ScheduleError("--tz applies to --cron only: --every and --at are in UTC")
    if time_zone is not None and not time_zone.strip():
        raise ScheduleError("--tz must name a time zone, such as Europe/Berlin")
    if at is not None:
        return _one_shot(at, now)
    if every is not None:
        return _interval(every)
    assert cron is not None
    return ScheduleSpec(kind="cron", pattern=_cron_line(cron), time_zone=time_zone)


def _one_shot(text: str, now: datetime) -> ScheduleSpec:
    try:
        when = parse_instant(text).replace(microsecond=0)
    except ValueError as exc:
        raise ScheduleError(f"--at {text!r} {exc}") from None
    if when <= now:
        raise ScheduleError(
            f"--at {utc_text(when)} is in the past (it is {utc_text(now)} now): "
            "a one-shot schedule must lie in the future"
        )
    return ScheduleSpec(kind="at", pattern=f"@at {utc_text(when)}", at=when)


def _interval(text: str) -> ScheduleSpec:
    match = _DURATION.match(text.strip())
    if match is None:
        raise ScheduleError(f"--every {text!r} is not a duration: use 30s, 10m, 2h")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 1:
        raise ScheduleError(f"--every {text!r} is too short: the shortest interval is 1s")
    return ScheduleSpec(kind="every", pattern=f"@every {match.group(1)}{match.group(2)}")


_PREDEFINED = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def _cron_line(text: str) -> str:
    """A five-field cron line (minute first) gets a leading seconds field of 0; six fields
    (seconds first) and the server's @daily-style names pass as they are."""
    line = " ".join(text.split())
    if line in _PREDEFINED:
        return line
    fields = line.split(" ")
    if len(fields) == 5:
        return "0 " + line
    if len(fields) == 6:
        return line
    raise ScheduleError(
        f"--cron {text!r} has {len(fields)} fields: give five (minute hour day month weekday) "
        "or six (seconds first)"
    )


def server_version_problem(kind: Kind, version: tuple[int, int, int]) -> str | None:
    """Why a server of ``version`` cannot hold a schedule of ``kind``, or None."""
    needed = REQUIRED_VERSION[kind]
    if version >= needed:
        return None
    what = {"at": "one-shot (--at)", "every": "interval (--every)", "cron": "cron"}[kind]
    return (
        f"{what} schedules need nats-server {'.'.join(map(str, needed))} or newer; "
        f"this server is {'.'.join(map(str, version))}"
    )


def firing_command_id(scheduler: str, next_fire: str, at: str | None) -> str | None:
    """The command id of one firing, from the headers the server set on it; None when the
    message is no firing of an agora schedule. Two deliveries of one firing get one id."""
    name = schedule_name(scheduler)
    if name is None:
        return None
    if next_fire == ONE_SHOT_NEXT:
        return f"schedule-{name}-at-{at}" if at else None
    try:
        when = datetime.fromisoformat(next_fire.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    # Cron in a time zone is stamped with its offset: one instant, one id.
    return f"schedule-{name}-before-{utc_text(when.astimezone(UTC))}"


def firing_of(headers: Mapping[str, str]) -> str | None:
    """The command id of the firing these intake headers belong to, or None (no firing)."""
    scheduler = headers.get(SCHEDULER_HEADER)
    next_fire = headers.get(NEXT_HEADER)
    if scheduler is None or next_fire is None:
        return None
    return firing_command_id(scheduler, next_fire, headers.get(AT_HEADER))
