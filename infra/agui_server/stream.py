"""One AG-UI run over agora's client library: submit the goal, then follow its events in the
log and its live token deltas (``agora.live.<goal_id>.>``, core NATS) together, each mapped
by :class:`infra.agui_server.mapping.RunMapper`, until the goal ends.

The live subject is subscribed before the goal is submitted, so no delta of its first model
call is missed; the log is read from the goal's first event, so a run sent again (the same
thread and run ids: the same goal) streams the whole run again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from ag_ui.core import BaseEvent
from nats.aio.msg import Msg

from events.model import Event
from infra.agui_server.mapping import RunMapper
from infra.clients.goals import AgoraClient
from infra.llm.chain import LiveDelta
from infra.logging import get_logger

__all__ = ["RunStream", "live_filter"]

log = get_logger("agora.agui")
_decode_delta = msgspec.json.Decoder(LiveDelta).decode
# Live deltas waiting to be sent: beyond this a slow reader loses deltas (never log events;
# the completed answers are recorded anyway).
_LIVE_BACKLOG = 10_000


def live_filter(goal_id: str) -> str:
    return f"agora.live.{goal_id}.>"


class RunStream:
    """The AG-UI events of one run whose goal is ``command['goal_id']``."""

    def __init__(
        self, client: AgoraClient, command: dict[str, Any], *, thread_id: str, run_id: str
    ) -> None:
        self._client = client
        self._command = command
        self._mapper = RunMapper(thread_id, run_id, str(command["goal_id"]))
        self._queue: asyncio.Queue[Event | LiveDelta | BaseException | None] = asyncio.Queue()
        self._live_backlog = 0

    async def start(self) -> None:
        """Subscribe to the live deltas, then submit (raises what ``submit`` raises)."""
        goal_id = self._mapper.goal_id
        self._live = await self._client.nc.subscribe(live_filter(goal_id), cb=self._on_live)
        try:
            await self._client.submit(self._command)
        except BaseException:
            await self._live.unsubscribe()
            raise

    async def _on_live(self, msg: Msg) -> None:
        try:
            delta = _decode_delta(msg.data)
        except msgspec.DecodeError:
            log.warning("undecodable live delta", subject=msg.subject, size=len(msg.data))
            return
        if self._live_backlog >= _LIVE_BACKLOG:
            return
        self._live_backlog += 1
        self._queue.put_nowait(delta)

    async def _follow(self) -> None:
        try:
            async for event in self._client.follow(self._mapper.goal_id):
                self._queue.put_nowait(event)
        except Exception as exc:  # handed to the stream, which raises it
            self._queue.put_nowait(exc)
        else:
            self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[BaseEvent]:
        """``RUN_STARTED``, then the run's events as they come, to ``RUN_FINISHED`` or
        ``RUN_ERROR``. Closing the iterator early stops following (the goal runs on)."""
        follower = asyncio.ensure_future(self._follow())
        try:
            for sent in self._mapper.started():
                yield sent
            while not self._mapper.finished:
                item = await self._queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, LiveDelta):
                    self._live_backlog -= 1
                    mapped = self._mapper.live(item)
                else:
                    mapped = self._mapper.event(item)
                for sent in mapped:
                    yield sent
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            with contextlib.suppress(Exception):
                await self._live.unsubscribe()
