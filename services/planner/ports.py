"""What the planner needs from outside: the goal's recorded history, a way to append its
decisions (fenced by the active replica's lease), a model, a clock."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

from events.model import Event

__all__ = ["Append", "AppendNewGoal", "AppendRequest", "ForkOrigin", "GoalExists", "GoalRecord"]


class GoalRecord(Protocol):
    def __call__(self, goal_id: str) -> Awaitable[Sequence[Event]]:
        """Every recorded event of ``goal_id``, in stream order (read on a cache miss only)."""
        ...


class Append(Protocol):
    def __call__(self, events: Sequence[Event]) -> Awaitable[None]:
        """Append one decision's events, in order, in one round trip; return once all are
        durably acknowledged. Raises ``events.errors.LeaseLostError`` (nothing stored) when
        this replica is no longer the active planner."""
        ...


class AppendNewGoal(Protocol):
    def __call__(self, events: Sequence[Event]) -> Awaitable[None]:
        """Append a goal's first event only if the goal has no events yet; raises
        ``events.errors.GoalExistsError`` (nothing stored) if it has."""
        ...


class ForkOrigin(Protocol):
    def __call__(self, goal_id: str, at_seq: int) -> Awaitable[Sequence[Event]]:
        """The events of ``goal_id`` stored at or before stream sequence ``at_seq``."""
        ...


class GoalExists(Protocol):
    def __call__(self, goal_id: str) -> Awaitable[bool]:
        """Whether ``goal_id`` has any event in the log (once true, true for ever)."""
        ...


class AppendRequest(Protocol):
    def __call__(self, events: Sequence[Event]) -> Awaitable[None]:
        """Append a steering command's record (unfenced: it decides nothing); return once it is
        durably acknowledged."""
        ...
