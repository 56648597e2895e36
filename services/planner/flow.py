"""Flow control's ledger: which goals hold a slot of which key, which wait, in what order.

No I/O: the clock comes in as data, and the ledger is rebuilt from the log (``restore``) by
whichever replica becomes the active planner. It is mutable on purpose: thousands of goals may
wait for one key, and copying its queue on every decision would make a burst quadratic.

A goal starts once every key it has (``events.flow.goal_keys``) has room: fewer goals of the
key running than its ``concurrency``, and fewer than ``rate.goals`` started in the last
``rate.per_s`` seconds. Goals waiting for a key start in order of priority (higher first), then
of arrival. A newcomer never overtakes a goal of its key that waits for the same room: it
joins the queue and the queue is served first. A goal held back by one of its keys does not
hold back the next goal of its other keys.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from events.catalog import GoalCancelled, GoalCompleted, GoalDequeued, GoalFailed, GoalQueued
from events.flow import FlowPolicy, KeyLimits, goal_keys, key_limits
from events.model import Event, Stamp

__all__ = ["FLOW_RECORD_TYPES", "FlowLedger", "Start", "Wait", "dequeued_event", "queued_event"]

# How many keys the ledger holds before it drops the idle ones (then twice what is left).
_SWEEP_AT = 4096

# What ``FlowLedger.restore`` reads from the log.
FLOW_RECORD_TYPES = (GoalQueued, GoalDequeued, GoalCompleted, GoalFailed, GoalCancelled)


@dataclass(frozen=True, slots=True)
class Start:
    """The goal takes its slots now (record ``goal_dequeued``)."""

    goal_id: str
    keys: tuple[str, ...]
    priority: int
    ticket: int
    # When it arrived (a start read back from the log: None, it is not needed any more).
    queued_at: datetime | None
    # When it took its slots: what its rate limits counted, and its goal_dequeued's time.
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Wait:
    """The goal waits (record ``goal_queued``)."""

    goal_id: str
    keys: tuple[str, ...]
    priority: int
    ticket: int
    reason: str


def queued_event(wait: Wait, stamp: Stamp) -> GoalQueued:
    """The record that the goal waits (one per goal: its id is the goal's)."""
    return GoalQueued(
        **stamp.envelope("goal_queued", "flow"),
        keys=wait.keys,
        priority=wait.priority,
        ticket=wait.ticket,
        reason=wait.reason,
    )


def dequeued_event(start: Start, stamp: Stamp) -> GoalDequeued:
    """The record that the goal took its slots, at ``stamp``'s time (one per goal)."""
    since = start.queued_at
    waited = 0.0 if since is None else (stamp.occurred_at - since).total_seconds()
    return GoalDequeued(
        **stamp.envelope("goal_dequeued", "flow"),
        keys=start.keys,
        priority=start.priority,
        queued_ms=round(max(0.0, waited) * 1000, 3),
    )


@dataclass(slots=True)
class _Waiting:
    goal_id: str
    keys: tuple[str, ...]
    priority: int
    ticket: int
    queued_at: datetime | None


@dataclass(slots=True)
class _Key:
    limits: KeyLimits
    running: set[str] = field(default_factory=set)
    # (-priority, ticket, goal_id); entries of goals that no longer wait are skipped lazily.
    queue: list[tuple[int, int, str]] = field(default_factory=list)
    starts: deque[datetime] = field(default_factory=deque)


class FlowLedger:
    def __init__(self, policy: FlowPolicy | None) -> None:
        self.policy = policy
        self._keys: dict[str, _Key] = {}
        self._running: dict[str, Start] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._next_ticket = 1
        self._sweep_at = _SWEEP_AT
        self._last_now: datetime | None = None

    # -- what the planner asks ----------------------------------------------------------

    def keys_of(self, metadata: dict[str, object]) -> tuple[str, ...]:
        return goal_keys(self.policy, metadata)

    def holds(self, goal_id: str) -> bool:
        """The goal holds slots or waits for them."""
        return goal_id in self._running or goal_id in self._waiting

    def running_of(self, key: str) -> int:
        known = self._keys.get(key)
        return len(known.running) if known is not None else 0

    def keys_held(self) -> int:
        """How many keys the ledger tracks (idle ones are dropped as it grows)."""
        return len(self._keys)

    def held(self) -> int:
        """How many goals hold slots."""
        return len(self._running)

    def waiting(self) -> int:
        """How many goals wait for slots."""
        return len(self._waiting)

    # -- decisions ------------------------------------------------------------------------

    def admit(
        self, goal_id: str, keys: tuple[str, ...], priority: int, now: datetime
    ) -> tuple[Start | Wait, list[Start]]:
        """A newly accepted goal: it starts or waits; and the goals that start with it (its
        keys' queues are served first). Asked again for a goal it knows, the answer is the
        same as before and nothing else starts."""
        if goal_id in self._running:
            return self._running[goal_id], []
        known = self._waiting.get(goal_id)
        if known is None:
            known = _Waiting(goal_id, keys, priority, self._next_ticket, now)
            self._next_ticket += 1
            self._enqueue(known)
            started = self._serve(keys, now)
        else:
            started = []
        own = next((start for start in started if start.goal_id == goal_id), None)
        others = [start for start in started if start.goal_id != goal_id]
        if own is not None:
            return own, others
        return Wait(goal_id, known.keys, known.priority, known.ticket, self._why(known, now)), []

    def finish(self, goal_id: str, now: datetime) -> list[Start]:
        """The goal completed, failed or was cancelled: its slots are free (a waiting goal
        leaves its queue). The goals that start in its place."""
        start = self._running.pop(goal_id, None)
        if start is None:
            self.withdraw(goal_id)
            return []
        for key in start.keys:
            known = self._keys.get(key)
            if known is not None:
                known.running.discard(goal_id)
        started = self._serve(start.keys, now)
        self._forget_idle(start.keys, now)
        return started

    def withdraw(self, goal_id: str) -> None:
        """A waiting goal leaves the queue (it is being cancelled); it will not start."""
        waiting = self._waiting.pop(goal_id, None)
        if waiting is not None:
            self._forget_idle(waiting.keys, None)

    def undo_start(self, start: Start) -> None:
        """Recording ``start`` failed: the goal waits again, in its place. Its rate starts
        are kept: an undone start may still be stored, and counting it only slows the key."""
        if self._running.pop(start.goal_id, None) is None:
            return
        for key in start.keys:
            self._key(key).running.discard(start.goal_id)
        waiting = _Waiting(start.goal_id, start.keys, start.priority, start.ticket, start.queued_at)
        self._enqueue(waiting)

    def due(self, now: datetime) -> list[Start]:
        """Every waiting goal that may start now (a rate window opened, the policy changed)."""
        keys = [key for key, known in self._keys.items() if known.queue]
        return self._serve(keys, now)

    def next_opening(self, now: datetime) -> datetime | None:
        """When a rate window next opens for a key that has goals waiting; None: no such key."""
        openings: list[datetime] = []
        for known in self._keys.values():
            rate = known.limits.rate
            if rate is None or not known.queue:
                continue
            self._prune(known, now)
            if len(known.starts) >= rate.goals:
                oldest_counted = known.starts[len(known.starts) - rate.goals]
                openings.append(oldest_counted + timedelta(seconds=rate.per_s))
        return min(openings, default=None)

    def restore(self, events: Iterable[Event], now: datetime) -> list[Start]:
        """Rebuild from the log's ``FLOW_RECORD_TYPES`` in stream order; the goals that may
        start at once (the policy may have changed while nothing ran)."""
        queued: dict[str, GoalQueued] = {}
        dequeued: dict[str, GoalDequeued] = {}
        ended: set[str] = set()
        for event in events:
            if isinstance(event, GoalQueued):
                queued.setdefault(event.goal_id, event)
                self._next_ticket = max(self._next_ticket, event.ticket + 1)
            elif isinstance(event, GoalDequeued):
                dequeued.setdefault(event.goal_id, event)
            elif isinstance(event, GoalCompleted | GoalFailed | GoalCancelled):
                ended.add(event.goal_id)
        for event in sorted(dequeued.values(), key=lambda e: e.occurred_at):
            self._restore_start(event, queued.get(event.goal_id), ended=event.goal_id in ended)
        for goal_id, event in queued.items():
            if goal_id not in dequeued and goal_id not in ended:
                self._enqueue(
                    _Waiting(goal_id, event.keys, event.priority, event.ticket, event.occurred_at)
                )
        for known in self._keys.values():
            self._prune(known, now)
        return self.due(now)

    def _restore_start(
        self, event: GoalDequeued, queued: GoalQueued | None, *, ended: bool
    ) -> None:
        for key in event.keys:
            known = self._key(key)
            if known.limits.rate is not None:
                known.starts.append(event.occurred_at)  # an ended goal's start still counts
        if ended:
            return
        ticket = queued.ticket if queued is not None else 0
        self._running[event.goal_id] = Start(
            event.goal_id, event.keys, event.priority, ticket, None, event.occurred_at
        )
        for key in event.keys:
            self._key(key).running.add(event.goal_id)

    # -- the mechanics --------------------------------------------------------------------

    def _key(self, key: str) -> _Key:
        known = self._keys.get(key)
        if known is None:
            if len(self._keys) >= self._sweep_at:
                self._sweep()
            known = self._keys[key] = _Key(key_limits(self.policy, key))
        return known

    def _sweep(self) -> None:
        """Drop every key that holds nothing any more (a rate key keeps its recent starts
        until they leave its window: a tenant seen once must not stay for ever)."""
        self._forget_idle(list(self._keys), self._last_now)
        self._sweep_at = max(_SWEEP_AT, 2 * len(self._keys))

    def _enqueue(self, waiting: _Waiting) -> None:
        self._waiting[waiting.goal_id] = waiting
        entry = (-waiting.priority, waiting.ticket, waiting.goal_id)
        for key in waiting.keys:
            heapq.heappush(self._key(key).queue, entry)

    def _prune(self, known: _Key, now: datetime) -> None:
        rate = known.limits.rate
        if rate is None:
            known.starts.clear()
            return
        horizon = now - timedelta(seconds=rate.per_s)
        while known.starts and known.starts[0] <= horizon:
            known.starts.popleft()

    def _room(self, key: str, now: datetime) -> bool:
        self._last_now = now
        known = self._key(key)
        limits = known.limits
        if limits.concurrency is not None and len(known.running) >= limits.concurrency:
            return False
        if limits.rate is None:
            return True
        self._prune(known, now)
        return len(known.starts) < limits.rate.goals

    def _serve(self, keys: Iterable[str], now: datetime) -> list[Start]:
        """Start, in each key's order, every waiting goal of ``keys`` whose keys all have room."""
        started: list[Start] = []
        for key in dict.fromkeys(keys):
            known = self._key(key)
            held: list[tuple[int, int, str]] = []
            while known.queue and self._room(key, now):
                entry = heapq.heappop(known.queue)
                waiting = self._waiting.get(entry[2])
                if waiting is None or waiting.ticket != entry[1]:
                    continue  # started or withdrawn meanwhile
                if all(self._room(other, now) for other in waiting.keys):
                    started.append(self._start(waiting, now))
                else:
                    held.append(entry)
            for entry in held:
                heapq.heappush(known.queue, entry)
        return started

    def _start(self, waiting: _Waiting, now: datetime) -> Start:
        del self._waiting[waiting.goal_id]
        start = Start(
            waiting.goal_id, waiting.keys, waiting.priority, waiting.ticket, waiting.queued_at, now
        )
        self._running[waiting.goal_id] = start
        for key in waiting.keys:
            known = self._key(key)
            known.running.add(waiting.goal_id)
            if known.limits.rate is not None:
                known.starts.append(now)
        return start

    def _why(self, waiting: _Waiting, now: datetime) -> str:
        for key in waiting.keys:
            known = self._key(key)
            limits = known.limits
            if limits.concurrency is not None and len(known.running) >= limits.concurrency:
                return f"{key}: {len(known.running)} of {limits.concurrency} running"
            if limits.rate is not None and not self._room(key, now):
                return (
                    f"{key}: {limits.rate.goals} started in the last {limits.rate.per_s:g} s "
                    f"(rate {limits.rate.goals} per {limits.rate.per_s:g} s)"
                )
        return "goals ahead of it wait for the same keys"

    def _forget_idle(self, keys: Iterable[str], now: datetime | None) -> None:
        """Drop keys that hold nothing (a key per metadata value must not pile up for ever)."""
        for key in keys:
            known = self._keys.get(key)
            if known is None or known.running:
                continue
            if now is not None:
                self._prune(known, now)
            if known.starts:
                continue
            if any(
                (waiting := self._waiting.get(goal_id)) is not None and waiting.ticket == ticket
                for _, ticket, goal_id in known.queue
            ):
                continue
            del self._keys[key]
