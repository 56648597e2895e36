"""Durable timers: a wait that nats-server keeps, not a process. Pure: subjects, headers, body.

A task that waits longer than the executor's threshold (a long ``sleep``) records
``timer_started`` and stores one scheduled message on ``agora.intake.timer.<timer_id>`` in the
intake stream, with ``Nats-Schedule: @at <due time>`` and ``Nats-Schedule-Target:
agora.intake.wakeup``. The server keeps it on disk and, when it falls due (at once, after a
restart that missed the time), republishes its body, a :class:`Wakeup`, to the target, where
the executor's durable consumer takes it and finishes the task. The scheduled message is
purged by the server once it fired. See docs/architecture.md, "Durable timers".

The body only names the timer: what the wake-up does is decided from the goal's log, so a
duplicate or late wake-up changes nothing that is already recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec

from events.errors import DecodeError
from events.instants import utc_text
from events.subjects import INTAKE_TIMER_PREFIX, INTAKE_WAKEUP, SUBJECT_TOKEN
from events.untrusted_json import decode_json

__all__ = ["Wakeup", "decode_wakeup", "due_pattern", "timer_headers", "timer_subject"]

_SCHEDULE = "Nats-Schedule"
_TARGET = "Nats-Schedule-Target"
_MSG_ID = "Nats-Msg-Id"
_TTL = "Nats-TTL"


class Wakeup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of a timer's scheduled message: the goal and the timer it wakes."""

    goal_id: Annotated[str, msgspec.Meta(pattern=SUBJECT_TOKEN.pattern)]
    timer_id: Annotated[str, msgspec.Meta(pattern=SUBJECT_TOKEN.pattern)]

    def encode(self) -> bytes:
        return msgspec.json.encode(self)


_decoder = msgspec.json.Decoder(Wakeup)


def decode_wakeup(data: bytes) -> Wakeup:
    """The wake-up in ``data``; ``DecodeError`` (dead-lettered, nothing woken) otherwise."""
    try:
        return decode_json(_decoder, data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(f"wake-up is not a valid timer message: {exc}") from exc


def timer_subject(timer_id: str) -> str:
    return INTAKE_TIMER_PREFIX + timer_id


def due_pattern(due_at: datetime) -> str:
    """The ``@at`` schedule of ``due_at``: the server reads whole seconds, so the time is
    rounded up (a timer never fires before it is due)."""
    utc = due_at.astimezone(UTC)
    whole = utc.replace(microsecond=0)
    if utc != whole:
        whole += timedelta(seconds=1)
    return f"@at {utc_text(whole)}"


def timer_headers(timer_id: str, due_at: datetime, *, copy: str = "") -> dict[str, str]:
    """The headers of a timer's scheduled message. ``Nats-Msg-Id`` is the timer's id, so
    arming the same timer again within the duplicate window stores nothing new; ``copy`` names
    a new copy of a timer that fired already (woke too early), which that window must not
    drop. ``Nats-TTL: never`` keeps it past the intake stream's age limit (a ``wait_until``
    may lie weeks ahead); the server purges it once it fired. A due time already past fires at
    once."""
    return {
        _SCHEDULE: due_pattern(due_at),
        _TARGET: INTAKE_WAKEUP,
        _MSG_ID: f"{timer_id}-{copy}" if copy else timer_id,
        _TTL: "never",
    }
