"""Composition root of the planner: intake validation and the per-goal decision loop."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from events.codec import decode_event
from events.commands import ParsedGoal, RejectedGoal, parse_goal_command
from events.errors import LlmError
from events.model import Event, Stamp
from events.subjects import EVENTS_STREAM, INTAKE_STREAM, goal_events_filter, goal_id_from_subject
from events.tools import BUILTIN_TOOLS
from infra.bus import GoalExistsError, read_events
from infra.consume import Delivery
from infra.logging import get_logger
from infra.runner import ServiceContext, ServiceParts, Subscription
from infra.settings import Settings
from services.llm.recording import recorded_call
from services.planner.cache import GoalStates
from services.planner.decide import decide_next, llm_failure
from services.planner.intake import Tools, accept_goal
from services.planner.llm_plan import LlmPlanning
from services.planner.state import PlannerState
from services.planner.templates import load_prompts

__all__ = ["build", "planning_from_settings"]

log = get_logger("agora.planner")


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


@dataclass
class _Planner:
    ctx: ServiceContext
    planning: LlmPlanning | None
    tools: Tools = field(default_factory=lambda: BUILTIN_TOOLS)
    states: GoalStates = field(default_factory=GoalStates)

    async def state_of(self, goal_id: str) -> PlannerState | None:
        """Cached, or folded from the goal's whole recorded history (after a restart)."""
        if goal_id not in self.states:
            self.states.apply(goal_id, await self.ctx.goal_log.load(goal_id))
        return self.states.get(goal_id)

    async def publish(
        self, goal_id: str, outputs: Sequence[Event], *, new_goal: bool = False
    ) -> None:
        if not outputs:
            return
        try:
            await self.ctx.publish(outputs, new_goal=new_goal)
        except BaseException:
            # Some outputs may be stored already: the cached state no longer matches the log.
            self.states.evict(goal_id)
            raise
        self.states.apply(goal_id, outputs)

    async def on_intake(self, delivery: Delivery) -> None:
        ctx = self.ctx
        fallback = delivery.headers.get("Nats-Msg-Id") or f"intake-{delivery.stream_seq}"
        parsed = parse_goal_command(
            delivery.data,
            fallback_command_id=fallback,
            max_bytes=ctx.settings.max_intake_bytes,
        )
        if parsed.goal_id not in self.states:
            # Presumed new: the stream itself refuses the first event if the goal has any,
            # which costs no extra round trip in the common case.
            outputs = accept_goal(
                parsed,
                None,
                tools=self.tools,
                now=ctx.now(),
                producer=ctx.producer,
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
        state = await self.state_of(parsed.goal_id)
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
        if state.goal is not None:
            # Level-triggered: if a crash cut the intake's outputs short (context_requested
            # missing), this emits what is due; otherwise nothing.
            await self.drive(parsed.goal_id, state, state.goal)

    async def on_event(self, delivery: Delivery) -> None:
        event = decode_event(delivery.data)
        await self.state_of(event.goal_id)
        state = self.states.apply(event.goal_id, [event])
        if state is None:
            return
        await self.drive(event.goal_id, state, event)

    async def drive(self, goal_id: str, state: PlannerState | None, trigger: Event) -> None:
        """Decide and publish; while a decision waits for a model, ask it and decide again."""
        ctx = self.ctx
        while True:
            decision = decide_next(
                state,
                trigger,
                tools=self.tools,
                now=ctx.now(),
                producer=ctx.producer,
                planning=self.planning,
            )
            await self.publish(goal_id, decision.events)
            state = self.states.get(goal_id)
            if decision.llm_request is None or state is None:
                return
            stamp = Stamp.caused_by(trigger, producer=ctx.producer, now=ctx.now())
            try:
                _, trigger = await recorded_call(
                    ctx.llm,
                    decision.llm_request,
                    stamp=stamp,
                    recorded=state.llm_answers,
                    publish=lambda events: self.publish(goal_id, events),
                )
            except LlmError as exc:
                log.warning("llm_failed", goal_id=goal_id, error=str(exc))
                failed = llm_failure(state, trigger, str(exc), now=ctx.now(), producer=ctx.producer)
                await self.publish(goal_id, failed)
                return
            state = self.states.get(goal_id)


def build(ctx: ServiceContext) -> ServiceParts:
    planner = _Planner(ctx, planning_for(ctx))
    concurrency = ctx.settings.concurrency
    return ServiceParts(
        [
            Subscription(ctx.spec(INTAKE_STREAM), planner.on_intake, concurrency),
            Subscription(
                ctx.spec(EVENTS_STREAM), planner.on_event, concurrency, ordering_key=_goal_of
            ),
        ]
    )
