"""What every tool connection shares (an MCP server's, an A2A agent's): connecting once under
a lock, within a deadline, every failure a ``ToolError`` that says whether a retry can help;
listing again in the background; closing. No SDK client is made here: a subclass brings its own.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Generic, Self, TypeVar

from events.errors import AgoraError, ToolError
from infra.logging import get_logger
from infra.mcp.listing import Listing

__all__ = ["CONNECT_TIMEOUT_S", "ConnectionBase", "describe_error"]

CONNECT_TIMEOUT_S = 30.0
ClientT = TypeVar("ClientT")

log = get_logger("agora.tools")


class ConnectionBase(ABC, Generic[ClientT]):
    """A connection whose ``_open`` makes its SDK client, until it is ``_drop``ped.
    ``problem``: why it is not usable right now (None: connected, or never tried).
    ``listing``: its latest tools; ``on_listing`` hears every new one."""

    def __init__(self, on_listing: Callable[[Self], Awaitable[None]] | None = None) -> None:
        self.problem: str | None = None
        self.listing = Listing({})
        self.protocol_version: str | None = None
        self._on_listing: Callable[[Self], Awaitable[None]] | None = on_listing
        self._client: ClientT | None = None
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    @abstractmethod
    def label(self) -> str:
        """Who it connects to, for messages: ``MCP server time``, ``A2A agent research``."""

    @abstractmethod
    async def _open(self) -> None:
        """Make ``_client`` and list the tools."""

    @abstractmethod
    async def _drop(self) -> None:
        """Let go of ``_client`` and whatever ``_open`` made (called under the lock)."""

    async def _lost(self, client: ClientT, why: str) -> None:
        """``client`` broke during a call: drop it (unless another call did), so the next
        call connects again."""
        async with self._lock:
            if self._client is client:
                self.problem = why
                await self._drop()

    async def _take_listing(self: Self, listing: Listing) -> None:
        """Keep ``listing`` and tell ``on_listing`` if it changed."""
        changed = listing != self.listing
        self.listing = listing
        if changed and self._on_listing is not None:
            try:
                await self._on_listing(self)
            except Exception as exc:
                # Recording the listing failed (the bus is away): the tools are still usable.
                log.warning("tool_listing_not_recorded", connection=self.label, error=str(exc))

    def _unreachable(self) -> str:
        """What ``connect`` says when it could not connect (``problem`` says why)."""
        return f"{self.label} cannot be reached: {self.problem}"

    def _problem_of(self, exc: Exception) -> str:
        return describe_error(exc)

    async def connect(self) -> None:
        """Connect (if not connected) and list the tools; raises ``ToolError`` when it cannot."""
        async with self._lock:
            if self.connected:
                return
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await self._open()
            except asyncio.CancelledError:
                # Whoever wanted the connection gave up (a call's timeout, shutdown): leave no
                # half-open session or started process behind.
                await self._drop()
                raise
            except AgoraError as exc:
                self.problem = str(exc)
                await self._drop()
                raise ToolError(f"{self.label} is misconfigured: {exc}", transient=False) from exc
            except Exception as exc:
                self.problem = self._problem_of(exc)
                await self._drop()
                raise ToolError(self._unreachable(), transient=True) from exc
            self.problem = None

    def _in_background(self, work: Callable[[], Awaitable[object]], *, alone: bool = False) -> None:
        """Run ``work`` beside the calls, its failure ignored. ``alone``: not while other
        background work runs (one listing at a time, however many ask for one)."""
        if alone and self._background:
            return

        async def quietly() -> None:
            with suppress(Exception):
                await work()

        task = asyncio.create_task(quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        async with self._lock:
            await self._drop()


def describe_error(exc: BaseException) -> str:
    """``Type: first line`` of an error (each of a group's, joined)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(inner) for inner in exc.exceptions)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
