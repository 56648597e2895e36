"""The planner's per-goal state, authoritative while this replica is the active planner.

The active planner is the only writer of planner events (its lease fences everyone else) and
receives every event it consumes, in stream order per goal; so the state it folded is the
goal's state, and nothing is read before a decision. A goal's history is read only on a cache
miss: after a takeover (the cache starts empty), an eviction (bounded LRU), or a failed write
(some outputs may be stored: the goal is evicted and reloaded from the log).

``evolve`` is idempotent, but events already applied are skipped anyway: the planner applies
its own outputs the moment they are acknowledged (write-through), and a redelivered input may
already be folded. Finished goals leave a small tombstone, so a late event for one (a task's
result after a budget failure) costs no history read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from events.model import Event
from services.planner.state import PlannerState, evolve, is_finished

__all__ = ["GoalStates"]


@dataclass
class _Entry:
    state: PlannerState | None = None
    seen: set[str] = field(default_factory=set)


@dataclass
class GoalStates:
    capacity: int = 100_000
    finished_capacity: int = 100_000
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)
    _finished: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def __contains__(self, goal_id: str) -> bool:
        return goal_id in self._entries or goal_id in self._finished

    def __len__(self) -> int:
        return len(self._entries)

    def is_finished(self, goal_id: str) -> bool:
        return goal_id in self._finished

    def get(self, goal_id: str) -> PlannerState | None:
        entry = self._entries.get(goal_id)
        return entry.state if entry else None

    def evict(self, goal_id: str) -> None:
        self._entries.pop(goal_id, None)

    def clear(self) -> None:
        """Forget everything: this replica (again) became the active planner."""
        self._entries.clear()
        self._finished.clear()

    def apply(self, goal_id: str, events: Iterable[Event]) -> PlannerState | None:
        """Fold ``events`` into the goal's cached state (created if absent)."""
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
        return self._settle(goal_id, entry)

    def apply_decided(
        self,
        goal_id: str,
        events: Sequence[Event],
        *,
        base: PlannerState | None,
        folded: PlannerState | None,
    ) -> PlannerState | None:
        """``events`` of a decision taken from ``base``, which ``folded`` already folds in:
        kept as the goal's state when ``base`` still is (none of ``events`` seen), so the
        decision is not folded twice; otherwise (or with ``folded`` None) ``apply``."""
        entry = self._entries.get(goal_id)
        if (
            folded is None
            or entry is None
            or entry.state is not base
            or any(event.event_id in entry.seen for event in events)
        ):
            return self.apply(goal_id, events)
        self._entries.move_to_end(goal_id)
        entry.seen.update(event.event_id for event in events)
        entry.state = folded
        return self._settle(goal_id, entry)

    def _settle(self, goal_id: str, entry: _Entry) -> PlannerState | None:
        state = entry.state
        if state is None:
            # Only a goal's acceptance starts its state: events without it are not a goal the
            # cache can vouch for (its next trigger reads the record).
            del self._entries[goal_id]
            return None
        if is_finished(state):
            del self._entries[goal_id]
            self._finished[goal_id] = None
            while len(self._finished) > self.finished_capacity:
                self._finished.popitem(last=False)
        return state
