"""Composition root of the planner: its two handlers wired to the bus.

Goal commands (``agora.intake.goal``) are admitted by whichever replica takes them
(:class:`GoalIntake`). Every later decision is taken by the active replica alone: the events
consumer is pinned (one replica receives everything, the others stand by), and the replica it
pins first takes the planner's lease (infra/bus/lease.py); its appends are fenced on it, so a
replica that lost the pin while paused can write nothing more. See docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
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
    GoalDequeued,
    LlmResponded,
    MessageReceived,
    PauseRequested,
    ResumeRequested,
    TaskCompleted,
    TaskFailed,
)
from events.control_commands import CONTROL_SUBJECTS
from events.errors import ConfigurationError
from events.flow import FlowPolicy, parse_flow_policy
from events.model import Event
from events.schedules import firing_of
from events.subjects import (
    EVENTS_STREAM,
    INTAKE_APPROVAL,
    INTAKE_MESSAGE,
    INTAKE_STREAM,
    goal_events_filter,
    goal_id_from_subject,
)
from events.trace_context import TRACEPARENT_HEADER
from infra.bus.consume import Delivery
from infra.bus.history import GoalHistory, last_on_subject, read_events, read_types_from_first
from infra.bus.lease import Lease, NotPinnedError, SingleFlight
from infra.bus.publisher import Fence
from infra.logging import get_logger
from infra.mcp.catalogue import ListedTools
from infra.platform.runner import ServiceContext, ServiceParts, Subscription
from infra.settings import Settings
from services.manifest import event_tag
from services.planner.flow import FLOW_RECORD_TYPES, FlowLedger
from services.planner.flow_gate import FlowGate
from services.planner.handler import (
    ApprovalIntake,
    CommandIntake,
    DeadlineKeeper,
    GoalIntake,
    GoalPlanner,
    MessageIntake,
)
from services.planner.llm_plan import LlmPlanning
from services.planner.templates import load_prompts

__all__ = [
    "approval_policy_from_settings",
    "build",
    "flow_policy_from_settings",
    "planning_from_settings",
]

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


def _policy_text(value: str | None, setting: str, *, words: tuple[str, ...]) -> str:
    """A policy setting's JSON: the value itself (inline JSON, or one of ``words``), or the
    content of the file it names."""
    raw = (value or "").strip()
    if raw and not raw.startswith("{") and raw.lower() not in words:
        try:
            raw = Path(raw).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"{setting} names {raw!r}, which cannot be read: {exc.strerror}"
            ) from None
    return raw


def approval_policy_from_settings(settings: Settings) -> ApprovalPolicy | None:
    """``AGORA_APPROVAL_POLICY``: ``default``, ``off``/unset, inline JSON, or a JSON file's path."""
    raw = _policy_text(settings.approval_policy, "AGORA_APPROVAL_POLICY", words=("default", "off"))
    return parse_policy(raw)


def flow_policy_from_settings(settings: Settings) -> FlowPolicy | None:
    """``AGORA_FLOW_POLICY``: ``off``/unset, inline JSON, or a JSON file's path."""
    raw = _policy_text(settings.flow_policy, "AGORA_FLOW_POLICY", words=("off",))
    return parse_flow_policy(raw)


def planning_for(ctx: ServiceContext) -> LlmPlanning | None:
    """The LLM planning strategy when a model is configured; None keeps the rule-based one."""
    return None if ctx.llm is None else planning_from_settings(ctx.settings)


# The lease a handling runs under (each delivery is handled in a task of its own).
epoch: ContextVar[Fence | None] = ContextVar("planner_epoch", default=None)


def flow_restorer(
    ctx: ServiceContext, planner: GoalPlanner, lease: Lease
) -> Callable[[], Awaitable[None]]:
    """What the planner does on becoming active: rebuild which goals hold flow slots and
    which wait, from the log (docs/flow.md). Without a policy and with no flow event ever
    recorded, flow control is off: nothing on the hot path."""
    policy = flow_policy_from_settings(ctx.settings)

    async def append_flow(events: Sequence[Event]) -> None:
        # Starts of waiting goals, fenced like every decision (a timer's wake-up runs under
        # the lease of the handling that armed it).
        await lease.append(events, epoch=epoch.get())

    async def restore_flow() -> None:
        if planner.flow is not None:
            planner.flow.stop()
        record = await read_types_from_first(
            ctx.nc,
            [event_tag(cls) for cls in FLOW_RECORD_TYPES],
            starting_at=("goal_queued", "goal_dequeued"),
        )
        if policy is None and record is None:
            planner.flow = None
            return
        gate = FlowGate(FlowLedger(policy), append_flow, ctx.producer, ctx.now)
        gate.restore(record or ())
        planner.flow = gate
        log.info("flow_restored", held=gate.ledger.held(), waiting=gate.ledger.waiting())
        await gate.flush()

    return restore_flow


def stopper(planner: GoalPlanner, tools: ListedTools) -> Callable[[], Awaitable[None]]:
    async def stop() -> None:
        if planner.flow is not None:
            planner.flow.stop()  # no wake-up of a stopping replica
        await tools.stop()

    return stop


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
    # Answers to approvals and messages for running goals: recorded on their goal, decided by
    # the active planner.
    recorders = {
        subject: kind(
            append=append_request,
            goal_exists=goal_exists,
            producer=ctx.producer,
            now=ctx.now,
            max_bytes=ctx.settings.max_intake_bytes,
        )
        for subject, kind in ((INTAKE_APPROVAL, ApprovalIntake), (INTAKE_MESSAGE, MessageIntake))
    }

    async def store_deadline(message: DeadlineMessage) -> None:
        await ctx.js.publish(message.subject, message.body, headers=message.headers)

    deadlines = DeadlineKeeper(store=store_deadline, now=ctx.now, noted=planner.note_request)

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
        if (recorder := recorders.get(delivery.subject)) is not None:
            await recorder.admit(delivery.data, fallback_command_id=fallback)
            return
        outcome = await intake.admit(
            delivery.data,
            fallback_command_id=fallback,
            traceparent=delivery.headers.get(TRACEPARENT_HEADER),
        )
        if outcome.existed:
            # A resend (or a redelivery after a crash): the goal was admitted before.
            log.info("goal_exists_command_ignored", goal_id=outcome.goal_id)

    restore_flow = flow_restorer(ctx, planner, lease)
    # The lease under which activation finished: until then nothing is decided (a decision
    # taken while the flow ledger is rebuilt would not see the goals that hold slots).
    activated_under: Fence | None = None

    async def activate() -> None:
        nonlocal activated_under
        # Only the pinned replica takes the lease: a standby still finishing what it was given
        # before its pin lapsed hands that back instead of fencing out the active replica.
        if not await pin.confirmed():
            raise NotPinnedError("this planner replica is not the pinned one; standing by")
        await lease.acquire(still_pinned=pin.confirmed)
        planner.states.clear()  # what another replica decided meanwhile is in the log
        await restore_flow()
        activated_under = lease.fence

    async def decide(event: Event, delivery: Delivery) -> None:
        if not lease.held or activated_under != lease.fence:
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
                    GoalDequeued,
                    MessageReceived,
                ),
                decide,
            ),
            ApprovalRequested: keep_deadline,
        },
    )

    return ServiceParts(
        [
            Subscription(ctx.spec(INTAKE_STREAM), on_command, ctx.settings.concurrency),
            Subscription(
                ctx.spec(EVENTS_STREAM),
                on_event,
                ctx.settings.concurrency,
                ordering_key=_goal_of,
                pin=pin,
            ),
        ],
        on_start=lambda: tools.start(ctx.nc),
        on_stop=stopper(planner, tools),
    )
