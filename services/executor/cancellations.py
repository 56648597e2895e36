"""Which goals this executor heard were cancelled, and stopping a tool call when one is.

Every executor replica follows ``goal_cancelled`` live (services/executor/manifest.py: a
doorbell on core NATS, not a durable consumer: the replica running a goal's task must hear it,
whichever replica that is). :class:`Cancellations` is what it heard; a task running a tool
watches its goal's signal, and :func:`unless_cancelled` stops the call when the signal comes.

The doorbell only makes the stop prompt. That a cancelled goal's task runs nothing more rests
on the log: every write of a plain task is guarded by the goal's last sequence, so the first
write after ``goal_cancelled`` is refused and the writer reads the cancellation (handler.py);
a redelivered task reads it in the goal's history (``decide.plan_execution``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Final, TypeVar

__all__ = ["CANCELLED", "Cancellations", "Stopped", "unless_cancelled"]

T = TypeVar("T")


class Stopped:
    """The work was stopped because its goal was cancelled."""

    def __repr__(self) -> str:
        return "CANCELLED"


CANCELLED: Final = Stopped()


@dataclass
class _Watch:
    signal: asyncio.Event = field(default_factory=asyncio.Event)
    watchers: int = 0


@dataclass
class Cancellations:
    """Goals heard cancelled (the most recent ``remember`` of them), and their signals."""

    remember: int = 10_000
    _cancelled: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _watches: dict[str, _Watch] = field(default_factory=dict)

    def cancel(self, goal_id: str) -> None:
        """``goal_id`` was cancelled: every call of it being watched is stopped."""
        self._cancelled[goal_id] = None
        self._cancelled.move_to_end(goal_id)
        while len(self._cancelled) > self.remember:
            self._cancelled.popitem(last=False)
        watch = self._watches.get(goal_id)
        if watch is not None:
            watch.signal.set()

    def is_cancelled(self, goal_id: str) -> bool:
        return goal_id in self._cancelled

    @contextlib.contextmanager
    def watch(self, goal_id: str) -> Iterator[asyncio.Event]:
        """The signal set when ``goal_id`` is (or was already heard) cancelled."""
        watch = self._watches.setdefault(goal_id, _Watch())
        watch.watchers += 1
        if goal_id in self._cancelled:
            watch.signal.set()
        try:
            yield watch.signal
        finally:
            watch.watchers -= 1
            if watch.watchers == 0:
                del self._watches[goal_id]

    @property
    def watched(self) -> int:
        """How many goals have a call being watched (each stopped call leaves none behind)."""
        return len(self._watches)


async def unless_cancelled(work: Awaitable[T], signal: asyncio.Event) -> T | Stopped:
    """``work``'s result, or ``CANCELLED`` once ``signal`` is set first (``work`` is then
    cancelled and awaited, so a tool has stopped when this returns)."""
    if signal.is_set():
        if asyncio.iscoroutine(work):
            work.close()  # never started
        return CANCELLED
    running = asyncio.ensure_future(work)
    waiting = asyncio.ensure_future(signal.wait())
    try:
        await asyncio.wait({running, waiting}, return_when=asyncio.FIRST_COMPLETED)
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
