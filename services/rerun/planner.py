"""Re-run: feed a recorded goal's inputs through the current decision code, compare.

``agora rerun GOAL_ID`` is how a team checks a planner or prompt change against yesterday's
traffic. For one service, every input it consumed (in stream order) is handed to the *same*
handler the live service runs (``services.planner.handler.GoalPlanner``), with ports that read
the record instead of the bus: its appends are collected, and model calls are answered from
the goal's recorded ``llm_responded`` events by request hash, without any network; a request
the recorded goal never asked is reported as a difference (or, with a live port, asked). The
new decisions are then compared with the recorded ones, by event id (ids are derived from each
decision's logical identity, so the same decision has the same id) and content (every field
but ``occurred_at``, ``producer`` and ``causation_id``, which say when and on which delivery a
decision was taken, not what it was).

Nothing is published: re-run only reads. A driver per service plugs into ``RERUNNERS``;
the planner's is here, the executor's and evaluator's follow the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from events.catalog import (
    ApprovalRejected,
    CommandRejected,
    GoalAccepted,
    GoalDequeued,
    GoalFailed,
    GoalQueued,
    GoalRejected,
    LlmRequested,
    LlmResponded,
    MessageRejected,
    PlanCreated,
    PlanRevised,
)
from events.errors import LlmNotRecordedError, LlmUnavailableError
from events.model import Event
from events.subjects import EVENTS_STREAM
from services.llm.messages import LlmReply, LlmRequest, request_hash
from services.llm.recording import answers_in, reply_from_event
from services.planner.decide import COMMAND_RECORDS, LLM_UNAVAILABLE
from services.planner.handler import GoalPlanner
from services.planner.manifest import MANIFEST
from services.rerun.common import (
    Difference,
    RerunOptions,
    RerunReport,
    compare,
    service_of,
    short,
)

__all__ = ["PLANNER_INPUTS", "planner_used_llm", "rerun_planner"]

# What the planner consumes (its manifest); a rerun feeds those written by other services.
PLANNER_INPUTS = MANIFEST.input_on(EVENTS_STREAM).events


@dataclass
class _RecordedModel:
    """The model as the recorded goal met it: its answers by request hash, its failures."""

    history: Sequence[Event]
    options: RerunOptions
    asked: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    reused: int = 0
    calls: int = 0
    stopped: bool = False

    def __post_init__(self) -> None:
        self.recorded_answers = answers_in(self.history)
        answered = set(self.recorded_answers)
        self.unanswered = {
            e.request_hash
            for e in self.history
            if isinstance(e, LlmRequested) and e.request_hash not in answered
        }
        self.recorded_failure = next(
            (
                e.reason.removeprefix(f"{LLM_UNAVAILABLE}: ")
                for e in self.history
                if isinstance(e, GoalFailed) and e.reason.startswith(LLM_UNAVAILABLE)
            ),
            "the model was unavailable",
        )

    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:
        rhash = request_hash(request)
        self.asked.append(rhash)
        hit = self.recorded_answers.get(rhash)
        if hit is not None:
            self.reused += 1
            return reply_from_event(hit)
        if rhash in self.unanswered:
            # Recorded: asked, never answered -- the goal failed on an unavailable model.
            raise LlmUnavailableError(self.recorded_failure)
        self.differences.append(
            Difference(
                "llm_request_new",
                rhash,
                "llm_requested",
                f"the current code asks a {request.purpose!r} request the recorded goal never "
                f"asked: {short(request.messages[-1].content if request.messages else '')}",
            )
        )
        if self.options.port is None:
            self.stopped = True
            raise LlmNotRecordedError(f"no recorded answer for request {rhash}")
        self.calls += 1
        return await self.options.port.complete(request, goal_id=goal_id)


def planner_used_llm(history: Sequence[Event]) -> bool:
    """Whether the recorded goal's planner planned with a model (or tried to)."""
    return any(
        (isinstance(event, PlanCreated | PlanRevised) and event.strategy == "llm")
        or (isinstance(event, LlmRequested) and service_of(event) == "planner")
        for event in history
    )


def _is_planner_input(event: Event) -> bool:
    # Recorded commands (steering requests, approval answers, messages) are the planner
    # intake's record of a command, as goal_accepted is.
    if isinstance(event, COMMAND_RECORDS):
        return True
    return isinstance(event, PLANNER_INPUTS) and service_of(event) != "planner"


def _is_intake_record(event: Event) -> bool:
    """Written by the planner's intake, not decided by the planner: not compared. Nor are
    flow control's records (goal_queued, goal_dequeued): they were decided across goals, which
    one goal's record cannot replay; what the goal decided once it ran is compared."""
    return isinstance(
        event, (GoalAccepted, GoalRejected, GoalQueued, GoalDequeued, *COMMAND_RECORDS)
    ) or (
        isinstance(event, CommandRejected | ApprovalRejected | MessageRejected)
        and event.causation_id is None
    )


async def rerun_planner(
    history: Sequence[Event], options: RerunOptions, now: datetime
) -> RerunReport:
    """Rerun the planner over ``history`` (one goal's events, in stream order)."""
    model = _RecordedModel(history, options)
    decided: list[Event] = []

    async def record(goal_id: str) -> Sequence[Event]:
        del goal_id  # one goal's record
        return history

    async def append(events: Sequence[Event]) -> None:
        decided.extend(events)

    planner = GoalPlanner(
        record=record,
        append=append,
        tools=options.tools,
        producer=options.producer,
        now=lambda: now,
        llm=model,
        planning=options.planning,
    )
    inputs = 0
    stop_at = len(history)
    for position, event in enumerate(history):
        if not (isinstance(event, GoalAccepted) or _is_planner_input(event)):
            continue
        inputs += 1
        try:
            await planner.handle(event, first_delivery=True)
        except LlmNotRecordedError:
            stop_at = position
            break
    # Decisions are compared, not the model calls that led to them.
    decided = [e for e in decided if not isinstance(e, LlmRequested | LlmResponded)]
    # Once a request had no recorded answer, what the recorded goal decided from that input
    # on cannot be compared: those decisions are unknown, not missing.
    decided_ids = {event.event_id for event in decided}
    recorded = [
        event
        for position, event in enumerate(history)
        if service_of(event) == "planner"
        and not _is_intake_record(event)
        and not isinstance(event, LlmRequested | LlmResponded)
        and (position < stop_at or event.event_id in decided_ids)
    ]
    differences = [*model.differences]
    differences += compare(recorded, decided)
    asked = set(model.asked)
    if not model.stopped:
        differences += [
            Difference(
                "llm_request_unasked",
                event.request_hash,
                "llm_requested",
                f"the recorded {event.purpose!r} request is no longer asked",
            )
            for event in history
            if isinstance(event, LlmRequested)
            and service_of(event) == "planner"
            and event.request_hash not in asked
        ]
    goal_id = history[0].goal_id if history else ""
    return RerunReport(
        goal_id=goal_id,
        service="planner",
        inputs=inputs,
        recorded=len(recorded),
        rerun_decisions=len(decided),
        llm_answers_reused=model.reused,
        llm_calls=model.calls,
        differences=tuple(differences),
        stopped_early=model.stopped,
    )
