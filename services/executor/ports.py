"""What the executor needs from outside: the goal's recorded events and a guarded publish."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

from events.catalog import TimerStarted
from events.model import Event

__all__ = ["GoalEvents", "GoalLog", "Publish", "Recorded", "Stored", "Timers"]


class Recorded(Protocol):
    """A goal's events in stream order, and the sequence of the last one (0: none)."""

    @property
    def events(self) -> list[Event]: ...

    @property
    def last_seq(self) -> int: ...


class Stored(Protocol):
    """The stream's acknowledgement of one event."""

    @property
    def seq(self) -> int: ...

    @property
    def duplicate(self) -> bool | None: ...


class GoalEvents(Protocol):
    """A goal's recorded events, in stream order (ReAct tasks read their steps from it)."""

    def load(self, goal_id: str) -> Awaitable[list[Event]]: ...


class GoalLog(Protocol):
    def load(self, goal_id: str) -> Awaitable[Recorded]:
        """The goal's recorded events, in stream order."""
        ...

    def since(self, goal_id: str, after_seq: int) -> Awaitable[Recorded]:
        """The goal's events stored after ``after_seq``, in stream order."""
        ...


class Publish(Protocol):
    def __call__(
        self, events: Sequence[Event], *, expected_last_seq: int
    ) -> Awaitable[Sequence[Stored]]:
        """Publish ``events`` in order, the first only if the goal's last stored event is at
        ``expected_last_seq`` (else ``ConcurrentWriteError``, nothing stored); return once
        every one is durably acknowledged."""
        ...


class Timers(Protocol):
    """Durable timers (events/timers.py): waits longer than ``threshold_s`` are armed here."""

    @property
    def threshold_s(self) -> float: ...

    def arm(self, timer: TimerStarted, *, copy: str = "") -> Awaitable[None]:
        """Store ``timer``'s scheduled wake-up; arming the same timer again is harmless.
        ``copy`` names a new copy of a timer that fired already, stored however recently the
        first copy was (a wake-up that came early arms one)."""
        ...

    def wake_now(self, timer: TimerStarted) -> Awaitable[None]:
        """Wake ``timer``'s task at once (its goal was cancelled); once, however often."""
        ...
