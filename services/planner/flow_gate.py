"""Flow control in the active planner: the ledger (services/planner/flow.py) over its ports.

:class:`GoalPlanner` asks the gate at three points:

- ``admission``: a goal accepted and not yet planned takes its slots (``goal_dequeued``, then
  it is planned in the same round trip) or waits (``goal_queued``). Synchronous: the ledger
  is shared by every goal's lane, so a slot is taken before anything is awaited.
- ``finished``: a goal holding slots ended; the goals that start in its place are owed a
  ``goal_dequeued``, which ``flush`` records on their own subjects. Each is then planned in its
  own lane when the planner receives that event: one goal's decisions stay in its stream order.
- ``withdraw``: a waiting goal is being cancelled and must not start meanwhile.

A key's rate window that opens later wakes the gate by a timer of the process; the ledger it
acts on is rebuilt from the log (``restore``) by every replica that becomes active, so a
restart loses nothing and the timer is armed again. Nothing starts unless its
``goal_dequeued`` is stored: a start whose append fails is undone and tried again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from events.errors import LeaseLostError
from events.model import Event, Stamp
from services.planner.flow import FlowLedger, Start, Wait, dequeued_event, queued_event
from services.planner.ports import Append
from services.planner.state import PlannerState

__all__ = ["FlowGate"]

log = structlog.get_logger("agora.planner.flow")

# How soon a start whose append failed is tried again.
_RETRY_S = 1.0


@dataclass
class FlowGate:
    ledger: FlowLedger
    append: Append
    producer: str
    now: Callable[[], datetime]
    _owed: list[tuple[Start, str | None]] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None
    _timer_at: float = 0.0
    _wakes: set[asyncio.Task[None]] = field(default_factory=set)
    _stopped: bool = False
    # The ledger moved since the last flush: the next rate window's wake-up may have changed.
    _moved: bool = False

    @property
    def armed(self) -> bool:
        """A wake-up is due (a rate window, or a start to try again)."""
        return self._timer is not None

    def admission(self, state: PlannerState, trigger: Event) -> list[Event]:
        """The goal's flow event due before it is planned, if a flow limit applies to it."""
        goal = state.goal
        if goal is None or state.flow is not None or state.outcome is not None:
            return []
        if state.plan is not None or state.context_requested:
            return []  # planned before flow control applied to it: it runs as it was
        keys = self.ledger.keys_of(goal.metadata)
        if not keys and not self.ledger.holds(state.goal_id):
            return []
        now = self.now()
        decided, others = self.ledger.admit(state.goal_id, keys, goal.priority, now)
        self._moved = True
        self._owe(others, trigger.event_id)
        stamp = Stamp.caused_by(trigger, producer=self.producer, now=now)
        if isinstance(decided, Wait):
            log.info("goal_queued", goal_id=state.goal_id, reason=decided.reason)
            return [queued_event(decided, stamp)]
        return [dequeued_event(decided, stamp)]

    def withdraw(self, goal_id: str) -> None:
        self.ledger.withdraw(goal_id)

    def finished(self, goal_id: str, cause: Event) -> None:
        if self.ledger.holds(goal_id):
            self._moved = True
            self._owe(self.ledger.finish(goal_id, self.now()), cause.event_id)

    def restore(self, events: Iterable[Event]) -> None:
        """Rebuild the ledger from the log (this replica became the active planner)."""
        self._moved = True
        self._owe(self.ledger.restore(events, self.now()), None)

    async def flush(self) -> None:
        """Record every start owed (``goal_dequeued`` on each goal), then arm the next rate
        window's wake-up. A failed append is not the caller's failure (its own events are
        stored): the starts are undone and tried again shortly. Nothing to do (most calls):
        returns at once."""
        if not self._owed and not self._moved:
            return
        while self._owed:
            owed, self._owed = self._owed, []
            # Stamped when the ledger counted them, so the log's times are what rates saw.
            events = [
                dequeued_event(start, _stamp(start.goal_id, cause, self.producer, start.started_at))
                for start, cause in owed
            ]
            try:
                await self.append(events)
            except LeaseLostError:
                for start, _ in owed:
                    self.ledger.undo_start(start)
                # Another replica decides now, from the log; this gate wakes no more.
                log.info("flow_gate_stopped", reason="lease lost")
                self.stop()
                return
            except Exception as exc:
                for start, _ in owed:
                    self.ledger.undo_start(start)
                log.warning("goal_dequeue_failed", goals=len(owed), error=str(exc))
                self._arm(_RETRY_S)
                return
        self._moved = False
        self._arm_next_opening()

    def stop(self) -> None:
        """No more wake-ups (the replica stops, or another gate takes over)."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the wake-up ----------------------------------------------------------------------

    def _owe(self, starts: list[Start], cause: str | None) -> None:
        self._owed += [(start, cause) for start in starts]

    def _arm_next_opening(self) -> None:
        now = self.now()
        opening = self.ledger.next_opening(now)
        if opening is not None:
            self._arm(max(0.0, (opening - now).total_seconds()))

    def _arm(self, delay_s: float) -> None:
        if self._stopped:
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + delay_s
        if self._timer is not None and self._timer_at <= at:
            return  # an earlier wake-up is armed: it arms the next one
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self._spawn_wake)

    def _spawn_wake(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.wake())
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)

    async def wake(self) -> None:
        """Start what may start now (a rate window opened, a failed start to try again)."""
        self._moved = True
        self._owe(self.ledger.due(self.now()), None)
        await self.flush()


def _stamp(goal_id: str, cause: str | None, producer: str, now: datetime) -> Stamp:
    return Stamp(
        producer=producer,
        goal_id=goal_id,
        occurred_at=now,
        causation_id=cause,
        correlation_id=goal_id,
    )
