"""A goal's recorded events with their stream sequences: what a replica reads before deciding.

Replicas of the planner and the executor share their durable consumers, so two of them may act
on one goal at once. Each decides on the goal's history as of a known last sequence and
publishes with that sequence as ``Nats-Expected-Last-Subject-Sequence`` on the goal's subjects
(``EventPublisher(expected_last_seq=...)``): if anything was appended to the goal meanwhile,
the stream refuses the publish, and the replica catches up (``since``) and decides again.

``load`` reads a whole history through the stream reader (one consumer, few round trips).
``since`` reads the few events after a known sequence with ``STREAM.MSG.GET`` and
``next_by_subj``, answered by the stream leader, so what it returns is never stale.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client as NatsClient

from events.codec import decode_event
from events.errors import AgoraError
from events.model import Event
from events.subjects import EVENTS_STREAM, goal_events_filter
from infra.bus import read_events

__all__ = ["GoalHistory", "History"]

_MSG_GET = f"$JS.API.STREAM.MSG.GET.{EVENTS_STREAM}"
_NOT_FOUND = 404


@dataclass(frozen=True, slots=True)
class History:
    events: list[Event]
    # The stream sequence of the goal's last event read (0: none), the optimistic guard.
    last_seq: int


@dataclass
class GoalHistory:
    nc: NatsClient
    timeout_s: float = 5.0

    async def load(self, goal_id: str) -> History:
        """Every event of the goal, in stream order."""
        events: list[Event] = []
        last_seq = 0
        async for seq, event in read_events(self.nc, goal_events_filter(goal_id)):
            events.append(event)
            last_seq = seq
        return History(events, last_seq)

    async def since(self, goal_id: str, after_seq: int) -> History:
        """The goal's events stored after ``after_seq``, in stream order."""
        events: list[Event] = []
        last_seq = after_seq
        request = {"seq": after_seq + 1, "next_by_subj": goal_events_filter(goal_id)}
        while True:
            try:
                reply = await self.nc.request(
                    _MSG_GET, json.dumps(request).encode(), timeout=self.timeout_s
                )
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
                raise AgoraError(f"could not read goal {goal_id}'s events: {exc!r}") from exc
            body = json.loads(reply.data)
            error = body.get("error")
            if error:
                if error.get("code") == _NOT_FOUND:
                    return History(events, last_seq)
                raise AgoraError(f"could not read goal {goal_id}'s events: {error}")
            message = body["message"]
            last_seq = int(message["seq"])
            events.append(decode_event(base64.b64decode(message["data"])))
            request["seq"] = last_seq + 1
