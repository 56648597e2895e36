"""Durable timers on the intake stream: the executor's ``Timers`` port (events/timers.py).

Arming a timer is one JetStream publish of a scheduled message (``Nats-Schedule: @at …``) that
nats-server stores on disk and republishes to ``agora.intake.wakeup`` when it falls due, also
after a restart that missed the time. Its ``Nats-Msg-Id`` is the timer's id, so arming the same
timer twice within the duplicate window stores it once; after the window a second copy would
only wake the task a second time, which the wake-up ignores.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext

from events.catalog import TimerStarted
from events.subjects import INTAKE_WAKEUP
from events.timers import Wakeup, timer_headers, timer_subject

__all__ = ["ScheduledTimers"]


@dataclass(frozen=True, slots=True)
class ScheduledTimers:
    js: JetStreamContext
    # Waits longer than this become durable timers (AGORA_TIMER_THRESHOLD_S).
    threshold_s: float

    async def arm(self, timer: TimerStarted, *, copy: str = "") -> None:
        wakeup = Wakeup(goal_id=timer.goal_id, timer_id=timer.timer_id)
        await self.js.publish(
            timer_subject(timer.timer_id),
            wakeup.encode(),
            headers=timer_headers(timer.timer_id, timer.due_at, copy=copy),
        )

    async def wake_now(self, timer: TimerStarted) -> None:
        # Every executor replica hears a cancellation: one id, so one wake-up is stored.
        wakeup = Wakeup(goal_id=timer.goal_id, timer_id=timer.timer_id)
        await self.js.publish(
            INTAKE_WAKEUP,
            wakeup.encode(),
            headers={"Nats-Msg-Id": f"{timer.timer_id}-cancelled"},
        )
