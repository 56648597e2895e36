"""Applying batches to DuckDB on a worker thread, strictly in order, while the next is read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

__all__ = ["OrderedApplier"]

ApplyRaw = Callable[[Sequence[int], Sequence[bytes]], int]


class OrderedApplier:
    """At most one batch is being written at a time; ``submit`` waits for the one before.

    DuckDB releases the GIL while it works, so reading batch n+1 from NATS overlaps writing
    batch n, which is what makes a rebuild use both cores.
    """

    def __init__(self, apply_raw: ApplyRaw) -> None:
        self._apply_raw = apply_raw
        self._writing: asyncio.Future[int] | None = None
        self.applied_seq = 0
        self.applied = 0

    async def submit(self, seqs: list[int], payloads: list[bytes]) -> None:
        await self.flush()
        if seqs:
            self._writing = asyncio.ensure_future(asyncio.to_thread(self._apply, seqs, payloads))

    def _apply(self, seqs: list[int], payloads: list[bytes]) -> int:
        count = self._apply_raw(seqs, payloads)
        self.applied_seq = max(self.applied_seq, seqs[-1])
        self.applied += count
        return count

    async def flush(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing
