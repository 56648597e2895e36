"""Drives the planner's own handlers (services/planner/handler.py) with in-memory ports.

The handlers are the ones the live service runs; here their ports append to a list (with
JetStream's duplicate window: an event id already stored is dropped), read the goal's record
from that list, and answer model calls from a script. Every port completes at once, so a
handler's coroutine runs to its end in one step (:func:`run_now`) and the tests stay plain
functions.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from events.catalog import GoalAccepted, GoalRejected
from events.errors import LlmNotRecordedError
from events.model import Event
from events.tools import BUILTIN_TOOLS
from services.llm.messages import LlmReply, LlmRequest
from services.planner.handler import GoalIntake, GoalPlanner
from services.planner.llm_plan import LlmPlanning
from services.planner.state import PlannerState, evolve

__all__ = ["NOW", "PRODUCER", "InMemoryLog", "ScriptedModel", "handler_pair", "run_now"]

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
PRODUCER = "planner@0.1.0"
T = TypeVar("T")


def run_now(work: Coroutine[Any, Any, T]) -> T:
    """The result of ``work``, whose every await completes immediately (in-memory ports)."""
    try:
        work.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    work.close()
    raise AssertionError("the handler waited for something that in-memory ports never do")


class InMemoryLog:
    """A goal log: appends in order, duplicates (same event id) dropped as JetStream does."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.loads = 0
        self.fail_next_append: BaseException | None = None

    def store(self, events: Sequence[Event]) -> list[Event]:
        known = {event.event_id for event in self.events}
        fresh = [event for event in events if event.event_id not in known]
        self.events += fresh
        return fresh

    async def append(self, events: Sequence[Event]) -> None:
        if self.fail_next_append is not None:
            error, self.fail_next_append = self.fail_next_append, None
            raise error
        self.store(events)

    async def append_new_goal(self, events: Sequence[Event]) -> None:
        from events.errors import GoalExistsError

        if any(e.goal_id == events[0].goal_id for e in self.events):
            raise GoalExistsError(f"goal {events[0].goal_id} exists")
        self.store(events)

    async def record(self, goal_id: str) -> Sequence[Event]:
        self.loads += 1
        return [event for event in self.events if event.goal_id == goal_id]

    async def fork_origin(self, goal_id: str, at_seq: int) -> Sequence[Event]:
        # Positions in this list stand in for stream sequences (1-based).
        return [
            e for n, e in enumerate(self.events, start=1) if e.goal_id == goal_id and n <= at_seq
        ]

    def state_of(self, goal_id: str) -> PlannerState | None:
        state: PlannerState | None = None
        for event in self.events:
            if event.goal_id == goal_id:
                state = evolve(state, event)
        return state


Answer = Callable[[LlmRequest], tuple[str, int, int]]


class ScriptedModel:
    """An LlmPort answering from ``answer`` (None: no answer yet, the decision pauses)."""

    def __init__(self) -> None:
        self.answer: Answer | None = None
        self.requests: list[LlmRequest] = []

    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:
        del goal_id
        if self.answer is None:
            raise LlmNotRecordedError("no answer scripted yet")
        self.requests.append(request)
        content, tokens_in, tokens_out = self.answer(request)
        return LlmReply(
            provider="scripted",
            model="m",
            content=content,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
        )


def handler_pair(
    log: InMemoryLog,
    *,
    planning: LlmPlanning | None = None,
    model: ScriptedModel | None = None,
    now: datetime = NOW,
) -> tuple[GoalIntake, GoalPlanner]:
    intake = GoalIntake(
        append_new_goal=log.append_new_goal,
        fork_origin=log.fork_origin,
        tools=BUILTIN_TOOLS,
        producer=PRODUCER,
        now=lambda: now,
        max_bytes=256 * 1024,
    )
    planner = GoalPlanner(
        record=log.record,
        append=log.append,
        tools=BUILTIN_TOOLS,
        producer=PRODUCER,
        now=lambda: now,
        llm=model,
        planning=planning,
    )
    return intake, planner


def admitted(intake: GoalIntake, body: dict[str, Any]) -> GoalAccepted | GoalRejected:
    outcome = run_now(intake.admit(msgspec.json.encode(body), fallback_command_id="c-x"))
    (first,) = outcome.appended
    assert isinstance(first, GoalAccepted | GoalRejected)
    return first
