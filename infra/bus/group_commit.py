"""Fenced calls on a replicated stream: one atomic batch in flight, the calls that arrive
meanwhile sent together in the next one.

A replicated stream refuses a message fenced on a subject while an earlier one fenced on it is
still replicating, so fenced writes cannot be pipelined there; one at a time, each decision
would cost a replication round trip of its own. Grouped, a round trip carries every decision
that waited for it: under load a batch holds many, alone a decision goes out at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from nats.js.api import PubAck

__all__ = ["GroupCommit"]

T = TypeVar("T")
Fenced = TypeVar("Fenced")
# Sends one batch of items, all stored or none; the acknowledgements in the items' order.
SendBatch = Callable[[Sequence[T], Fenced], Awaitable[list[PubAck]]]
# A waiting call: its items, its fence and the future its caller awaits.
_Call = tuple[Sequence[T], Fenced, "asyncio.Future[list[PubAck]]"]


class GroupCommit(Generic[T, Fenced]):
    def __init__(
        self,
        send: SendBatch[T, Fenced],
        *,
        send_alone: SendBatch[T, Fenced],
        max_items: int,
        refused_alone: Callable[[Exception], bool],
    ) -> None:
        # ``send`` for a group; ``send_alone`` for one call (it may answer a resend that was
        # stored before as such, which a group's refusal cannot tell apart).
        self._send = send
        self._send_alone = send_alone
        self._max_items = max_items
        # A refusal that may be one call's alone (a duplicate, a bad message): the grouped
        # calls are then sent one by one, so each gets its own answer.
        self._refused_alone = refused_alone
        self._queue: list[_Call[T, Fenced]] = []
        self._flushing = False
        self._flusher: asyncio.Future[None] | None = None

    async def __call__(self, items: Sequence[T], fence: Fenced) -> list[PubAck]:
        future: asyncio.Future[list[PubAck]] = asyncio.get_running_loop().create_future()
        self._queue.append((items, fence, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                group = self._take()
                fence = group[0][1]
                if len(group) == 1:
                    await self._one(*group[0])
                    continue
                try:
                    acks = await self._send([i for items, _, _ in group for i in items], fence)
                except Exception as exc:
                    if self._refused_alone(exc):
                        for items, _, future in group:
                            await self._one(items, fence, future)
                    else:
                        for _, _, future in group:
                            _settle(future, exc)
                    continue
                start = 0
                for items, _, future in group:
                    _settle(future, acks[start : start + len(items)])
                    start += len(items)
        finally:
            self._flushing = False

    def _take(self) -> list[_Call[T, Fenced]]:
        """The next calls under the first one's fence, up to one batch's worth of items."""
        fence = self._queue[0][1]
        group: list[_Call[T, Fenced]] = []
        rest: list[_Call[T, Fenced]] = []
        size = 0
        for call in self._queue:
            fits = not group or size + len(call[0]) <= self._max_items
            if call[1] == fence and fits:
                group.append(call)
                size += len(call[0])
            else:
                rest.append(call)
        self._queue = rest
        return group

    async def _one(
        self, items: Sequence[T], fence: Fenced, future: asyncio.Future[list[PubAck]]
    ) -> None:
        try:
            _settle(future, await self._send_alone(items, fence))
        except Exception as exc:
            _settle(future, exc)


def _settle(future: asyncio.Future[list[PubAck]], outcome: list[PubAck] | Exception) -> None:
    if future.done():  # its caller gave up waiting (cancelled)
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
