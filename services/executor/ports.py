"""What the executor needs from outside: the goal's recorded events and a durable publish."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

from events.model import Event

__all__ = ["GoalLog", "Publish"]


class GoalLog(Protocol):
    def load(self, goal_id: str) -> Awaitable[list[Event]]:
        """The goal's recorded events, in stream order."""
        ...


class Publish(Protocol):
    def __call__(self, events: Sequence[Event]) -> Awaitable[None]:
        """Publish ``events`` in order; return once every one is durably acknowledged."""
        ...
