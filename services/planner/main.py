"""Composition root of the planner: intake validation and the per-goal decision loop.

Replicas share the planner's consumers. Every decision is taken on the goal's state as of its
last stored event and published guarded by that sequence (per-goal optimistic concurrency,
docs/architecture.md); a refused publish means another replica decided meanwhile: catch up and
decide again. A decision that waits for a language model asks it through ``recorded_call``
(answered from the goal's record when it can) and decides again with the answer.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from events.codec import decode_event
from events.commands import ParsedGoal, RejectedGoal, parse_goal_command
from events.errors import AgoraError, LlmError
from events.model import Event, Stamp
from events.subjects import EVENTS_STREAM, INTAKE_STREAM, goal_events_filter, goal_id_from_subject
from events.tools import BUILTIN_TOOLS
from infra.bus.consume import Delivery
from infra.bus.history import GoalHistory, read_events
from infra.bus.publisher import GoalChangedError, GoalExistsError
from infra.logging import get_logger
from infra.platform.runner import ServiceContext, ServiceParts, Subscription
from infra.settings import Settings
from services.llm.messages import LlmRequest
from services.llm.recording import recorded_call
from services.planner.cache import GoalStates
from services.planner.decide import decide_next, llm_failure
from services.planner.intake import Tools, accept_goal
from services.planner.llm_plan import LlmPlanning
from services.planner.state import PlannerState
from services.planner.templates import load_prompts

__all__ = ["build", "planning_from_settings"]

log = get_logger("agora.planner")
# Decisions in a row refused because the goal changed meanwhile before the input is nak'd.
MAX_CONFLICTS = 20


class GoalContendedError(AgoraError):
    """Every decision for a goal kept losing to concurrent writes; the input comes back later."""


def _goal_of(delivery: Delivery) -> Hashable | None:
    return goal_id_from_subject(delivery.subject)


def planning_from_settings(settings: Settings) -> LlmPlanning:
    """The LLM planning strategy as configured (prompt templates, attempts, tokens)."""
    return LlmPlanning(
        prompts=load_prompts(settings.planner_prompts),
        attempts=settings.llm_plan_attempts,
        max_tokens=settings.llm_plan_max_tokens,
    )


def planning_for(ctx: ServiceContext) -> LlmPlanning | None:
    """The LLM planning strategy when a model is configured; None keeps the rule-based one."""
    return None if ctx.llm is None else planning_from_settings(ctx.settings)


class Planner:
    """The planner's handlers over its goal-state cache; one per process."""

    def __init__(self, ctx: ServiceContext, planning: LlmPlanning | None) -> None:
        self.ctx = ctx
        self.planning = planning
        self.states = GoalStates()
        self.tools: Tools = BUILTIN_TOOLS
        self.history = GoalHistory(self.ctx.nc)

    async def current_state(self, goal_id: str) -> PlannerState | None:
        """The goal's state as of its last stored event: cached, then caught up with the log.

        Another replica may have decided for this goal since (replicas share the consumer),
        so the cache is brought up to the stream's end before every decision.
        """
        if goal_id not in self.states:
            loaded = await self.history.load(goal_id)
            return self.states.apply(goal_id, loaded.events, up_to_seq=loaded.last_seq)
        newer = await self.history.since(goal_id, self.states.last_seq(goal_id))
        return self.states.apply(goal_id, newer.events, up_to_seq=newer.last_seq)

    async def decide_and_publish(self, goal_id: str, trigger: Event | None) -> None:
        """Decide on the current state and publish, guarded by the goal's last sequence.

        ``trigger`` None: the goal's own acceptance is the trigger (a resent command). When
        the stream refuses a publish because the goal changed, catch up and decide again;
        while a decision waits for a model, ask it and decide again with its answer.
        """
        conflicts = 0
        while conflicts < MAX_CONFLICTS:
            state = await self.current_state(goal_id)
            if state is None or state.goal is None:
                return
            cause = trigger or state.goal
            decision = decide_next(
                state,
                cause,
                tools=self.tools,
                now=self.ctx.now(),
                producer=self.ctx.producer,
                planning=self.planning,
            )
            try:
                await self.publish_guarded(goal_id, decision.events)
                if decision.llm_request is None:
                    return
                answer = await self.ask_model(goal_id, cause, decision.llm_request)
            except GoalChangedError:
                conflicts += 1
                continue
            if answer is None:
                return
            trigger = answer
        raise GoalContendedError(
            f"goal {goal_id} changed under {MAX_CONFLICTS} decisions in a row; retrying later"
        )

    async def ask_model(self, goal_id: str, cause: Event, request: LlmRequest) -> Event | None:
        """The recorded answer to ``request`` (the next trigger), or None when the goal failed
        because no model could answer."""
        state = self.states.get(goal_id)
        if state is None:
            return None
        stamp = Stamp.caused_by(cause, producer=self.ctx.producer, now=self.ctx.now())
        try:
            _, responded = await recorded_call(
                self.ctx.llm,
                request,
                stamp=stamp,
                recorded=state.llm_answers,
                publish=lambda events: self.publish_guarded(goal_id, events),
            )
        except LlmError as exc:
            log.warning("llm_failed", goal_id=goal_id, error=str(exc))
            failed = llm_failure(
                state, cause, str(exc), now=self.ctx.now(), producer=self.ctx.producer
            )
            await self.publish_guarded(goal_id, failed)
            return None
        return responded

    async def publish_guarded(self, goal_id: str, outputs: Sequence[Event]) -> None:
        await self.publish(goal_id, outputs, expected_last_seq=self.states.last_seq(goal_id))

    async def publish(
        self,
        goal_id: str,
        outputs: Sequence[Event],
        *,
        new_goal: bool = False,
        expected_last_seq: int | None = None,
    ) -> None:
        if not outputs:
            return
        try:
            acks = await self.ctx.publish(
                outputs, new_goal=new_goal, expected_last_seq=expected_last_seq
            )
        except GoalChangedError:
            raise  # nothing was stored: the cache still matches the log
        except BaseException:
            # Some outputs may be stored already: the cached state no longer matches the log.
            self.states.evict(goal_id)
            raise
        seqs = [ack.seq for ack in acks]
        guarded = new_goal or expected_last_seq is not None
        # A guarded first event followed by back-to-back ones: nothing else of any goal came
        # in between, so the history is complete up to the last of them.
        fresh = not any(ack.duplicate for ack in acks)
        unbroken = (
            guarded
            and fresh
            and len(seqs) == len(outputs)
            and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        )
        self.states.apply(goal_id, outputs, up_to_seq=seqs[-1] if unbroken else None)

    async def on_intake(self, delivery: Delivery) -> None:
        fallback = delivery.headers.get("Nats-Msg-Id") or f"intake-{delivery.stream_seq}"
        parsed = parse_goal_command(
            delivery.data,
            fallback_command_id=fallback,
            max_bytes=self.ctx.settings.max_intake_bytes,
        )
        if parsed.goal_id not in self.states:
            # Presumed new: the stream itself refuses the first event if the goal has any,
            # which costs no extra round trip in the common case.
            outputs = accept_goal(
                parsed,
                None,
                tools=self.tools,
                now=self.ctx.now(),
                producer=self.ctx.producer,
                origin=await self.fork_origin(parsed),
            )
            try:
                await self.publish(parsed.goal_id, outputs, new_goal=True)
            except GoalExistsError:
                await self.resume_existing(parsed)
        else:
            await self.resume_existing(parsed)

    async def fork_origin(self, parsed: ParsedGoal | RejectedGoal) -> list[Event]:
        """A fork's old goal, as recorded up to the fork's sequence (read from the log)."""
        if isinstance(parsed, RejectedGoal) or parsed.command.forked_from is None:
            return []
        fork = parsed.command.forked_from
        return [
            event
            async for seq, event in read_events(self.ctx.nc, goal_events_filter(fork.goal_id))
            if seq <= fork.at_seq
        ]

    async def resume_existing(self, parsed: ParsedGoal | RejectedGoal) -> None:
        """A command for a goal that exists: a resend, or a redelivery after a crash."""
        state = await self.current_state(parsed.goal_id)
        if state is None:
            return
        if state.command_id != parsed.command_id:
            log.warning(
                "goal_id_in_use",
                goal_id=parsed.goal_id,
                command_id=parsed.command_id,
                owner_command_id=state.command_id,
                action="command ignored; the existing goal is not changed",
            )
        # Level-triggered: if a crash cut the intake's outputs short (context_requested
        # missing), this emits what is due; otherwise nothing.
        await self.decide_and_publish(parsed.goal_id, None)

    async def on_event(self, delivery: Delivery) -> None:
        event = decode_event(delivery.data)
        await self.decide_and_publish(event.goal_id, event)


def build(ctx: ServiceContext) -> ServiceParts:
    planner = Planner(ctx, planning_for(ctx))
    concurrency = ctx.settings.concurrency
    return ServiceParts(
        [
            Subscription(ctx.spec(INTAKE_STREAM), planner.on_intake, concurrency),
            Subscription(
                ctx.spec(EVENTS_STREAM), planner.on_event, concurrency, ordering_key=_goal_of
            ),
        ]
    )
