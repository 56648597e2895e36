"""Re-drive: feed a recorded goal's inputs through the current decision code, compare.

``agora redrive GOAL_ID`` is how a team checks a planner or prompt change against yesterday's
traffic. For one service, every input it consumed (in stream order) is folded into a fresh
state and decided on by the *current* code, exactly as the service's adapter does it live
(its own outputs are folded as they are decided). Model calls are answered from the goal's
recorded ``llm_responded`` events by request hash, without any network; a request the
recorded goal never asked is reported as a difference (or, with a live port, asked). The new
decisions are then compared with the recorded ones, by event id (ids are derived from each
decision's logical identity, so the same decision has the same id) and content (every field
but ``occurred_at``, ``producer`` and ``causation_id``, which say when and on which delivery a
decision was taken, not what it was).

Nothing is published: re-drive only reads. A driver per service plugs into ``REDRIVERS``;
the planner's is here, the executor's and evaluator's can follow the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from events.catalog import (
    ContextProvided,
    EvaluationCompleted,
    GoalAccepted,
    GoalFailed,
    GoalRejected,
    LlmRequested,
    LlmResponded,
    PlanCreated,
    PlanRevised,
    TaskCompleted,
    TaskFailed,
)
from events.model import Event, Stamp
from events.tools import BUILTIN_TOOLS
from services.llm.messages import LlmRequest, request_hash
from services.llm.recording import answers_in, responded_event
from services.planner.decide import LLM_UNAVAILABLE, decide_next, llm_failure
from services.planner.state import PlannerState, evolve
from services.redrive.common import (
    Difference,
    RedriveOptions,
    RedriveReport,
    compare,
    service_of,
    short,
)

__all__ = ["PLANNER_INPUTS", "planner_used_llm", "redrive_planner"]

# What the planner consumes from other services (its consumer in infra/bus/streams.py).
PLANNER_INPUTS = (ContextProvided, TaskCompleted, TaskFailed, EvaluationCompleted, LlmResponded)

# -- the planner --------------------------------------------------------------------------


@dataclass
class _PlannerRun:
    history: Sequence[Event]
    options: RedriveOptions
    now: datetime
    state: PlannerState | None = None
    decided: list[Event] = field(default_factory=list)
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

    def fold(self, events: Sequence[Event]) -> None:
        for event in events:
            self.state = evolve(self.state, event)

    async def drive(self, trigger: Event) -> None:
        options = self.options
        while True:
            decision = decide_next(
                self.state,
                trigger,
                tools=BUILTIN_TOOLS,
                now=self.now,
                producer=options.producer,
                planning=options.planning,
            )
            self.fold(decision.events)
            self.decided += decision.events
            if decision.llm_request is None:
                return
            answer = await self.answer(decision.llm_request, trigger)
            if answer is None:
                return
            self.fold([answer])
            trigger = answer

    async def answer(self, request: LlmRequest, trigger: Event) -> LlmResponded | None:
        rhash = request_hash(request)
        self.asked.append(rhash)
        hit = self.recorded_answers.get(rhash)
        if hit is not None:
            self.reused += 1
            return hit
        if rhash in self.unanswered:
            # Recorded: asked, never answered -- the goal failed on an unavailable model.
            failed = llm_failure(
                self.state,
                trigger,
                self.recorded_failure,
                now=self.now,
                producer=self.options.producer,
            )
            self.fold(failed)
            self.decided += failed
            return None
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
            return None
        assert self.state is not None
        stamp = Stamp.caused_by(trigger, producer=self.options.producer, now=self.now)
        reply = await self.options.port.complete(request, goal_id=self.state.goal_id)
        self.calls += 1
        responded = responded_event(stamp, rhash, reply)
        self.recorded_answers[rhash] = responded
        return responded


def planner_used_llm(history: Sequence[Event]) -> bool:
    """Whether the recorded goal's planner planned with a model (or tried to)."""
    return any(
        (isinstance(event, PlanCreated | PlanRevised) and event.strategy == "llm")
        or (isinstance(event, LlmRequested) and service_of(event) == "planner")
        for event in history
    )


def _is_planner_input(event: Event) -> bool:
    return isinstance(event, PLANNER_INPUTS) and service_of(event) != "planner"


async def redrive_planner(
    history: Sequence[Event], options: RedriveOptions, now: datetime
) -> RedriveReport:
    """Re-drive the planner over ``history`` (one goal's events, in stream order)."""
    run = _PlannerRun(history, options, now)
    inputs = 0
    stop_at = len(history)
    for position, event in enumerate(history):
        if not (isinstance(event, GoalAccepted) or _is_planner_input(event)):
            continue
        run.fold([event])
        inputs += 1
        await run.drive(event)
        if run.stopped:
            stop_at = position
            break
    # Once a request had no recorded answer, what the recorded goal decided from that input
    # on cannot be compared: those decisions are unknown, not missing.
    decided_ids = {event.event_id for event in run.decided}
    recorded = [
        event
        for position, event in enumerate(history)
        if service_of(event) == "planner"
        and not isinstance(event, GoalAccepted | GoalRejected | LlmRequested | LlmResponded)
        and (position < stop_at or event.event_id in decided_ids)
    ]
    differences = [*run.differences]
    differences += compare(recorded, run.decided)
    asked = set(run.asked)
    if not run.stopped:
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
    return RedriveReport(
        goal_id=goal_id,
        service="planner",
        inputs=inputs,
        recorded=len(recorded),
        redriven=len(run.decided),
        llm_answers_reused=run.reused,
        llm_calls=run.calls,
        differences=tuple(differences),
        stopped_early=run.stopped,
    )
