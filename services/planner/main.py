"""Composition root of the planner: its two handlers wired to the bus.

Goal commands (``agora.intake.goal``) are admitted by whichever replica takes them
(:class:`GoalIntake`). Every later decision is taken by the active replica alone: the events
consumer is pinned (one replica receives everything, the others stand by), and the replica it
pins first takes the planner's lease (infra/bus/lease.py); its appends are fenced on it, so a
replica that lost the pin while paused can write nothing more. See docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from contextvars import ContextVar
from pathlib import Path

from events.approval_commands import DeadlineMessage
from events.approvals import ApprovalPolicy, parse_policy
from events.catalog import (
    ApprovalAnswered,
    ApprovalRequested,
    CancelRequested,
    ContextProvided,
    EvaluationCompleted,
    GoalAccepted,
    LlmResponded,
    PauseRequested,
    ResumeRequested,
    TaskCompleted,
    TaskFailed,
)
from events.control_commands import CONTROL_SUBJECTS
from events.errors import ConfigurationError
from events.model import Event
from events.schedules import firing_of
from events.subjects import (
    EVENTS_STREAM,
    INTAKE_APPROVAL,
    INTAKE_STREAM,
    goal_events_filter,
    goal_id_from_subject,
)
from events.trace_context import TRACEPARENT_HEADER
from infra.bus.consume import Delivery
from infra.bus.history import GoalHistory, last_on_subject, read_events
from infra.bus.lease import Lease, NotPinnedError, SingleFlight
from infra.bus.publisher import Fence
from infra.logging import get_logger
from infra.mcp.catalogue import ListedTools
from infra.platform.runner import ServiceContext, ServiceParts, Subscription
from infra.settings import Settings
from services.planner.handler import (
    ApprovalIntake,
    CommandIntake,
    DeadlineKeeper,
    GoalIntake,
    GoalPlanner,
)
from services.planner.llm_plan import LlmPlanning
from services.planner.templates import load_prompts

__all__ = ["approval_policy_from_settings", "build", "planning_from_settings"]

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


def approval_policy_from_settings(settings: Settings) -> ApprovalPolicy | None:
    """``AGORA_APPROVAL_POLICY``: ``default``, ``off``/unset, inline JSON, or a JSON file's path."""
    raw = (settings.approval_policy or "").strip()
    if raw and not raw.startswith("{") and raw.lower() not in ("default", "off"):
        try:
            raw = Path(raw).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"AGORA_APPROVAL_POLICY names {raw!r}, which cannot be read: {exc.strerror}"
            ) from None
    return parse_policy(raw)


def planning_for(ctx: ServiceContext) -> LlmPlanning | None:
    """The LLM planning strategy when a model is configured; None keeps the rule-based one."""
    return None if ctx.llm is None else planning_from_settings(ctx.settings)


# The lease a handling runs under (each delivery is handled in a task of its own).
epoch: ContextVar[Fence | None] = ContextVar("planner_epoch", default=None)


def build(ctx: ServiceContext) -> ServiceParts:
    activation = SingleFlight()
    history = GoalHistory(ctx.nc, outputs=ctx.outputs)
    lease = Lease(ctx.nc, ctx.publish, service="planner", producer=ctx.producer, now=ctx.now)
    pin = ctx.pin(EVENTS_STREAM)
    # A pin lost is a lease to take again: another replica may have decided in between.
    pin.on_lost(lease.release)

    async def record(goal_id: str) -> Sequence[Event]:
        return (await history.load(goal_id)).events

    async def append(events: Sequence[Event]) -> None:
        await lease.append(events, epoch=epoch.get())

    async def append_new_goal(events: Sequence[Event]) -> None:
        await ctx.publish(events, new_goal=True)

    async def fork_origin(goal_id: str, at_seq: int) -> Sequence[Event]:
        return [
            event
            async for seq, event in read_events(
                ctx.nc, goal_events_filter(goal_id), outputs=ctx.outputs
            )
            if seq <= at_seq
        ]

    # The built-in tools and the MCP tools the executor recorded as listed (docs/mcp.md).
    tools = ListedTools()
    intake = GoalIntake(
        append_new_goal=append_new_goal,
        fork_origin=fork_origin,
        tools=tools,
        producer=ctx.producer,
        now=ctx.now,
        max_bytes=ctx.settings.max_intake_bytes,
        refresh_tools=tools.refresh,
        policy=approval_policy_from_settings(ctx.settings),
    )
    planner = GoalPlanner(
        record=record,
        append=append,
        tools=tools,
        producer=ctx.producer,
        now=ctx.now,
        llm=ctx.llm,
        planning=planning_for(ctx),
    )

    async def goal_exists(goal_id: str) -> bool:
        return await last_on_subject(ctx.nc, goal_events_filter(goal_id)) is not None

    async def append_request(events: Sequence[Event]) -> None:
        await ctx.publish(events)

    steering = CommandIntake(
        append=append_request, goal_exists=goal_exists, producer=ctx.producer, now=ctx.now
    )
    answers = ApprovalIntake(
        append=append_request,
        goal_exists=goal_exists,
        producer=ctx.producer,
        now=ctx.now,
        max_bytes=ctx.settings.max_intake_bytes,
    )

    async def store_deadline(message: DeadlineMessage) -> None:
        await ctx.js.publish(message.subject, message.body, headers=message.headers)

    deadlines = DeadlineKeeper(store=store_deadline, now=ctx.now)

    async def on_command(delivery: Delivery) -> None:
        # A schedule's firing carries no Nats-Msg-Id (the server strips it): its id is derived
        # from the headers the server stamped on it, the same on every delivery.
        fallback = (
            firing_of(delivery.headers)
            or delivery.headers.get("Nats-Msg-Id")
            or f"intake-{delivery.stream_seq}"
        )
        if delivery.subject in CONTROL_SUBJECTS:
            await steering.admit(delivery.subject, delivery.data, fallback_command_id=fallback)
            return
        if delivery.subject == INTAKE_APPROVAL:
            await answers.admit(delivery.data, fallback_command_id=fallback)
            return
        outcome = await intake.admit(
            delivery.data,
            fallback_command_id=fallback,
            traceparent=delivery.headers.get(TRACEPARENT_HEADER),
        )
        if outcome.existed:
            # A resend (or a redelivery after a crash): the goal was admitted before.
            log.info("goal_exists_command_ignored", goal_id=outcome.goal_id)

    async def activate() -> None:
        # Only the pinned replica takes the lease: a standby still finishing what it was given
        # before its pin lapsed hands that back instead of fencing out the active replica.
        if not await pin.confirmed():
            raise NotPinnedError("this planner replica is not the pinned one; standing by")
        await lease.acquire(still_pinned=pin.confirmed)
        planner.states.clear()  # what another replica decided meanwhile is in the log

    async def decide(event: Event, delivery: Delivery) -> None:
        if not lease.held:
            await activation.run(activate)
        # Every append of this handling is fenced on the lease it started under.
        epoch.set(lease.fence)
        await planner.handle(event, first_delivery=not delivery.redelivered)

    async def keep_deadline(event: Event, _delivery: Delivery) -> None:
        assert isinstance(event, ApprovalRequested)
        await deadlines.keep(event)

    on_event = ctx.routed(
        EVENTS_STREAM,
        {
            **dict.fromkeys(
                (
                    GoalAccepted,
                    ContextProvided,
                    TaskCompleted,
                    TaskFailed,
                    EvaluationCompleted,
                    LlmResponded,
                    CancelRequested,
                    PauseRequested,
                    ResumeRequested,
                    ApprovalAnswered,
                ),
                decide,
            ),
            ApprovalRequested: keep_deadline,
        },
    )

    concurrency = ctx.settings.concurrency
    return ServiceParts(
        [
            Subscription(ctx.spec(INTAKE_STREAM), on_command, concurrency),
            Subscription(
                ctx.spec(EVENTS_STREAM), on_event, concurrency, ordering_key=_goal_of, pin=pin
            ),
        ],
        on_start=lambda: tools.start(ctx.nc),
        on_stop=tools.stop,
    )
