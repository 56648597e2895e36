"""The events the live trace follower holds for the goals it saw begin, with a bound.

A goal's trace is built from its events when it ends. A goal that never ends (a schedule, an
agent waiting forever, a loop) would keep its events in the follower's memory for good, so a
goal is held only up to a count of events and an age: past either, its events so far are let
go (the follower exports the trace so far from them) and no more of its events are kept; when
it ends, its whole trace is read from the stream again. No I/O and no clock here: ``now`` is
the caller's monotonic time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["HeldGoals", "LetGo"]

E = TypeVar("E")  # an event, as the follower reads it
LetGo = tuple[str, list[E]]  # a goal id and the events held for it


@dataclass(slots=True)
class _Held(Generic[E]):
    since: float  # when the follower began holding the goal
    events: list[E] = field(default_factory=list)


@dataclass
class HeldGoals(Generic[E]):
    """Goals by id, in the order they began (so the oldest are first)."""

    max_events: int
    max_age_s: float
    _goals: dict[str, _Held[E]] = field(default_factory=dict)
    _total: int = 0

    def __len__(self) -> int:
        return len(self._goals)

    @property
    def events(self) -> int:
        """How many events are held, over every goal."""
        return self._total

    def begin(self, goal_id: str, now: float) -> None:
        """Hold ``goal_id``'s events from now on (a goal already held is left as it is)."""
        if goal_id not in self._goals:
            self._goals[goal_id] = _Held[E](now)

    def add(self, goal_id: str, event: E) -> LetGo[E] | None:
        """Hold ``event`` if its goal is held; the goal's events when this one reaches the
        count, its goal then let go."""
        held = self._goals.get(goal_id)
        if held is None:
            return None
        held.events.append(event)
        self._total += 1
        if len(held.events) < self.max_events:
            return None
        return self.end(goal_id)

    def end(self, goal_id: str) -> LetGo[E] | None:
        """Stop holding ``goal_id``: its events (None: it was not held)."""
        held = self._goals.pop(goal_id, None)
        if held is None:
            return None
        self._total -= len(held.events)
        return goal_id, held.events

    def overdue(self, now: float) -> list[LetGo[E]]:
        """Let go of every goal held for ``max_age_s`` or longer: their events."""
        old = []
        for goal_id, held in self._goals.items():  # oldest first: stop at the first young one
            if now - held.since < self.max_age_s:
                break
            old.append(goal_id)
        return [let_go for goal_id in old if (let_go := self.end(goal_id)) is not None]
