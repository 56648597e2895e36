"""Which goals this executor heard were cancelled (or had an iteration interrupted by a
message), and stopping a tool call when one is.

Every executor replica follows ``goal_cancelled`` and ``iteration_interrupted`` live
(services/executor/manifest.py: a doorbell on core NATS, not a durable consumer: the replica
running a goal's task must hear it, whichever replica that is). :class:`Cancellations` is what
it heard; a task running a tool watches its goal's (and iteration's) signal, and
:func:`unless_cancelled` stops the call when the signal comes.

The doorbell only makes the stop prompt. That a stopped task runs nothing more rests on the
log: every write of a plain task is guarded by the goal's last sequence, so the first write
after ``goal_cancelled`` (or its iteration's ``iteration_interrupted``) is refused and the
writer reads it (handler.py); a redelivered task reads it in the goal's history
(``decide.plan_execution``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Final, TypeVar, overload

from events.catalog import GoalCancelled, IterationInterrupted
from events.model import Event
from services.executor.decide import CANCELLED_REASON, interrupted_reason

__all__ = [
    "CANCELLED",
    "DECLINED",
    "Cancellations",
    "Declined",
    "Grace",
    "Stopped",
    "unless_cancelled",
]

T = TypeVar("T")


class Stopped:
    """The work was stopped because its goal was cancelled."""

    def __repr__(self) -> str:
        return "CANCELLED"


CANCELLED: Final = Stopped()


class Declined:
    """The work was stopped because what was to happen once it ran past its grace refused."""

    def __repr__(self) -> str:
        return "DECLINED"


DECLINED: Final = Declined()


@dataclass(frozen=True, slots=True)
class Grace:
    """What happens once work has run ``seconds``: ``then()``, awaited while the work goes on;
    False from it stops the work."""

    seconds: float
    then: Callable[[], Awaitable[bool]]


@dataclass
class _Watch:
    signal: asyncio.Event = field(default_factory=asyncio.Event)
    watchers: int = 0


# "Every iteration": what a cancellation stops.
_WHOLE_GOAL = sys.maxsize


@dataclass
class Cancellations:
    """Goals heard cancelled or interrupted (the most recent ``remember`` of them), and the
    signals of the calls being watched, one per goal and iteration."""

    remember: int = 10_000
    # Goal id -> the last iteration whose calls are stopped (``_WHOLE_GOAL``: cancelled).
    _stopped: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _watches: dict[tuple[str, int], _Watch] = field(default_factory=dict)

    def cancel(self, goal_id: str) -> None:
        """``goal_id`` was cancelled: every call of it being watched is stopped."""
        self._stop(goal_id, _WHOLE_GOAL)

    def interrupt(self, goal_id: str, iteration: int) -> None:
        """A message interrupted ``iteration`` of ``goal_id``: its calls being watched stop."""
        self._stop(goal_id, iteration)

    def hear(self, event: Event) -> None:
        """A ``goal_cancelled`` or ``iteration_interrupted`` heard on the doorbell."""
        if isinstance(event, GoalCancelled):
            self.cancel(event.goal_id)
        elif isinstance(event, IterationInterrupted):
            self.interrupt(event.goal_id, event.iteration)

    def _stop(self, goal_id: str, through: int) -> None:
        self._stopped[goal_id] = max(self._stopped.get(goal_id, 0), through)
        self._stopped.move_to_end(goal_id)
        while len(self._stopped) > self.remember:
            self._stopped.popitem(last=False)
        for (watched, iteration), watch in self._watches.items():
            if watched == goal_id and iteration <= through:
                watch.signal.set()

    def is_cancelled(self, goal_id: str) -> bool:
        return self._stopped.get(goal_id) == _WHOLE_GOAL

    def reason(self, goal_id: str, iteration: int) -> str:
        """Why a call of ``iteration`` of ``goal_id`` was stopped (as ``task_cancelled`` says)."""
        if self.is_cancelled(goal_id):
            return CANCELLED_REASON
        return interrupted_reason(iteration)

    def stops(self, goal_id: str, iteration: int) -> bool:
        """Whether ``goal_id`` was heard cancelled, or its ``iteration`` interrupted."""
        return self._stopped.get(goal_id, 0) >= iteration

    @contextlib.contextmanager
    def watch(self, goal_id: str, iteration: int = 1) -> Iterator[asyncio.Event]:
        """The signal set when ``goal_id`` is (or was already heard) cancelled, or its
        ``iteration`` interrupted."""
        key = (goal_id, iteration)
        watch = self._watches.setdefault(key, _Watch())
        watch.watchers += 1
        if self.stops(goal_id, iteration):
            watch.signal.set()
        try:
            yield watch.signal
        finally:
            watch.watchers -= 1
            if watch.watchers == 0:
                del self._watches[key]

    @property
    def watched(self) -> int:
        """How many goals have a call being watched (each stopped call leaves none behind)."""
        return len({goal_id for goal_id, _ in self._watches})


@overload
async def unless_cancelled(work: Awaitable[T], signal: asyncio.Event) -> T | Stopped: ...


@overload
async def unless_cancelled(
    work: Awaitable[T], signal: asyncio.Event, grace: Grace
) -> T | Stopped | Declined: ...


async def unless_cancelled(
    work: Awaitable[T], signal: asyncio.Event, grace: Grace | None = None
) -> T | Stopped | Declined:
    """``work``'s result, or ``CANCELLED`` once ``signal`` is set first (``work`` is then
    cancelled and awaited, so a tool has stopped when this returns). With ``grace``: once
    ``work`` has run ``grace.seconds``, ``grace.then()`` is awaited while it goes on, and
    ``DECLINED`` if that refused (``work`` stopped the same way)."""
    if signal.is_set():
        if asyncio.iscoroutine(work):
            work.close()  # never started
        return CANCELLED
    running = asyncio.ensure_future(work)
    waiting = asyncio.ensure_future(signal.wait())
    either = {running, waiting}
    try:
        if grace is None:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        else:
            done, _ = await asyncio.wait(
                either, timeout=grace.seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                if not await grace.then():
                    return DECLINED
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        if not running.done():
            running.cancel()
            # The tool's own clean-up (a sandboxed program killed) finishes before we go on.
            with contextlib.suppress(asyncio.CancelledError):
                await running
    if running.cancelled():
        return CANCELLED
    return running.result()
