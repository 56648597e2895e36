"""The planner's per-goal state, folded from the log and kept in memory (bounded, LRU).

``evolve`` is idempotent, but we still skip events already applied: the planner applies its own
outputs the moment they are published (so its next decision sees them even before the stream
delivers them back) and then sees some of them again from the log.

The cache is trusted only while every write through it succeeded. When handling an event fails
after some outputs may have reached the stream, the goal is evicted and its next event reloads
the whole history from the log, in stream order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from events.model import Event
from services.planner.state import PlannerState, evolve

__all__ = ["GoalStates"]


@dataclass
class _Entry:
    state: PlannerState | None = None
    seen: set[str] = field(default_factory=set)
    # Every event of the goal up to this stream sequence is applied (the optimistic guard).
    last_seq: int = 0


@dataclass
class GoalStates:
    capacity: int = 100_000
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)

    def __contains__(self, goal_id: str) -> bool:
        return goal_id in self._entries

    def get(self, goal_id: str) -> PlannerState | None:
        entry = self._entries.get(goal_id)
        return entry.state if entry else None

    def last_seq(self, goal_id: str) -> int:
        entry = self._entries.get(goal_id)
        return entry.last_seq if entry else 0

    def evict(self, goal_id: str) -> None:
        self._entries.pop(goal_id, None)

    def apply(
        self, goal_id: str, events: Iterable[Event], *, up_to_seq: int | None = None
    ) -> PlannerState | None:
        """Fold ``events`` in; ``up_to_seq``: they complete the history up to that sequence."""
        entry = self._entries.get(goal_id)
        if entry is None:
            entry = self._entries[goal_id] = _Entry()
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(goal_id)
        for event in events:
            if event.event_id not in entry.seen:
                entry.seen.add(event.event_id)
                entry.state = evolve(entry.state, event)
        if up_to_seq is not None:
            entry.last_seq = max(entry.last_seq, up_to_seq)
        return entry.state
