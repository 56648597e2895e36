"""Composition root of the planner: intake validation and the per-goal decision loop."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from events.codec import decode_event
from events.commands import ParsedGoal, RejectedGoal, parse_goal_command
from events.model import Event
from events.subjects import EVENTS_STREAM, INTAKE_STREAM, goal_id_from_subject
from events.tools import BUILTIN_TOOLS
from infra.bus import GoalExistsError
from infra.consume import Delivery
from infra.logging import get_logger
from infra.runner import ServiceContext, ServiceParts, Subscription
from services.planner.cache import GoalStates
from services.planner.decide import decide
from services.planner.intake import accept_goal
from services.planner.state import PlannerState

__all__ = ["build"]

log = get_logger("agora.planner")


def _goal_of(delivery: Delivery) -> Hashable | None:
    return goal_id_from_subject(delivery.subject)


def build(ctx: ServiceContext) -> ServiceParts:
    states = GoalStates()
    tools = BUILTIN_TOOLS

    async def state_of(goal_id: str) -> PlannerState | None:
        """Cached, or folded from the goal's whole recorded history (after a restart)."""
        if goal_id not in states:
            states.apply(goal_id, await ctx.goal_log.load(goal_id))
        return states.get(goal_id)

    async def publish(goal_id: str, outputs: Sequence[Event], *, new_goal: bool = False) -> None:
        if not outputs:
            return
        try:
            await ctx.publish(outputs, new_goal=new_goal)
        except BaseException:
            # Some outputs may be stored already: the cached state no longer matches the log.
            states.evict(goal_id)
            raise
        states.apply(goal_id, outputs)

    async def on_intake(delivery: Delivery) -> None:
        fallback = delivery.headers.get("Nats-Msg-Id") or f"intake-{delivery.stream_seq}"
        parsed = parse_goal_command(
            delivery.data,
            fallback_command_id=fallback,
            max_bytes=ctx.settings.max_intake_bytes,
        )
        if parsed.goal_id not in states:
            # Presumed new: the stream itself refuses the first event if the goal has any,
            # which costs no extra round trip in the common case.
            outputs = accept_goal(parsed, None, tools=tools, now=ctx.now(), producer=ctx.producer)
            try:
                await publish(parsed.goal_id, outputs, new_goal=True)
            except GoalExistsError:
                await resume_existing(parsed)
        else:
            await resume_existing(parsed)

    async def resume_existing(parsed: ParsedGoal | RejectedGoal) -> None:
        """A command for a goal that exists: a resend, or a redelivery after a crash."""
        state = await state_of(parsed.goal_id)
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
            due = decide(state, state.goal, tools=tools, now=ctx.now(), producer=ctx.producer)
            await publish(parsed.goal_id, due)

    async def on_event(delivery: Delivery) -> None:
        event = decode_event(delivery.data)
        await state_of(event.goal_id)
        state = states.apply(event.goal_id, [event])
        if state is None:
            return
        outputs = decide(state, event, tools=tools, now=ctx.now(), producer=ctx.producer)
        await publish(event.goal_id, outputs)

    concurrency = ctx.settings.concurrency
    return ServiceParts(
        [
            Subscription(ctx.spec(INTAKE_STREAM), on_intake, concurrency),
            Subscription(ctx.spec(EVENTS_STREAM), on_event, concurrency, ordering_key=_goal_of),
        ]
    )
