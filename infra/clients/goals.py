"""Submitting goals and following them: what the CLI and Python users call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from events.catalog import GoalCompleted, GoalFailed, GoalRejected
from events.codec import decode_event
from events.errors import AgoraError
from events.ids import goal_id_for_command
from events.model import Event
from events.subjects import EVENTS_STREAM, INTAKE_GOAL, INTAKE_STREAM, goal_events_filter

__all__ = ["TERMINAL", "AgoraClient", "Submitted", "is_terminal"]

TERMINAL = (GoalCompleted, GoalFailed, GoalRejected)


def is_terminal(event: Event) -> bool:
    return isinstance(event, TERMINAL)


@dataclass(frozen=True, slots=True)
class Submitted:
    command_id: str
    goal_id: str
    duplicate: bool


@dataclass
class AgoraClient:
    nc: NatsClient

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    async def submit(self, command: Mapping[str, Any]) -> Submitted:
        """Publish a goal command; ids default as the planner would choose them."""
        body = dict(command)
        body.setdefault("command_id", f"c-{uuid.uuid4()}")
        command_id = str(body["command_id"])
        body.setdefault("goal_id", goal_id_for_command(command_id))
        ack = await self.js.publish(
            INTAKE_GOAL,
            msgspec.json.encode(body),
            stream=INTAKE_STREAM,
            headers={"Nats-Msg-Id": command_id},
        )
        return Submitted(command_id, str(body["goal_id"]), bool(ack.duplicate))

    async def follow(self, goal_id: str, *, until_terminal: bool = True) -> AsyncIterator[Event]:
        """A goal's events from its first, live, in stream order."""
        sub = await self.js.subscribe(
            goal_events_filter(goal_id),
            stream=EVENTS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            config=_named_reader(),
        )
        try:
            async for msg in sub.messages:
                event = decode_event(msg.data)
                yield event
                if until_terminal and is_terminal(event):
                    return
        finally:
            await sub.unsubscribe()

    async def wait_for_outcome(self, goal_id: str, timeout_s: float = 60.0) -> list[Event]:
        """Every event of the goal up to and including its terminal event."""
        events: list[Event] = []

        async def collect() -> None:
            async for event in self.follow(goal_id):
                events.append(event)

        try:
            await asyncio.wait_for(collect(), timeout_s)
        except TimeoutError:
            last = type(events[-1]).__name__ if events else "nothing"
            raise AgoraError(
                f"goal {goal_id} did not finish within {timeout_s}s (last event: {last})"
            ) from None
        return events

    async def tail(
        self, subject: str = "agora.events.>", *, new_only: bool = True
    ) -> AsyncIterator[tuple[int, Event]]:
        sub = await self.js.subscribe(
            subject,
            stream=EVENTS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW if new_only else DeliverPolicy.ALL,
            config=_named_reader(),
        )
        try:
            async for msg in sub.messages:
                yield msg.metadata.sequence.stream, decode_event(msg.data)
        finally:
            await sub.unsubscribe()


def _named_reader() -> ConsumerConfig:
    """A fresh consumer name: agora's permissions allow creating named consumers only (an
    unnamed create could name, and so change, another service's durable consumer)."""
    return ConsumerConfig(name=f"follow_{uuid.uuid4().hex}", inactive_threshold=60.0)
