"""Composition root of the executor: tools, their HTTP client and workspace, the task handlers
(plain tool tasks, and ReAct tasks driven by the configured language model)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as CoreSubscription
from nats.js.api import PubAck

from events.catalog import ApprovalDenied, ApprovalGranted, TaskScheduled, TimerFired
from events.codec import decode_event
from events.errors import DecodeError
from events.model import Event
from events.subjects import EVENTS_STREAM, INTAKE_STREAM, event_type_filter, goal_id_from_subject
from events.timers import decode_wakeup
from events.tools import REACT_TOOL, ToolSpec
from infra.a2a_client.config import check_names, parse_agents
from infra.bus.consume import Delivery
from infra.bus.history import GoalHistory
from infra.bus.timers import ScheduledTimers
from infra.logging import get_logger
from infra.mcp import ListingRecorder, McpTools, ToolConnection, parse_servers
from infra.platform.runner import ServiceContext, ServiceParts, Subscription
from services.executor.cancellations import Cancellations
from services.executor.decide import Backoff
from services.executor.handler import execute_task, wake_cancelled_timers, wake_task
from services.executor.manifest import MANIFEST
from services.executor.netguard import AddressPolicy, guarded_http_client
from services.executor.react_handler import execute_react, resume_react
from services.executor.react_request import ReactConfig
from services.executor.registry import RegisteredTool, ToolRegistry
from services.executor.runner import ToolRunner
from services.executor.sandbox import Sandbox, SandboxLimits
from services.executor.tools.context import ToolContext, ToolImplementation, ToolResult
from services.llm.templates import PromptTemplate, load_prompt

__all__ = ["build", "connected_tools", "react_prompt"]

log = get_logger("agora.executor")


def react_prompt() -> PromptTemplate:
    """The ReAct prompt this code uses (a rerun loads the same one)."""
    return load_prompt("executor", "react", 1)


def build(ctx: ServiceContext) -> ServiceParts:
    workspace = ctx.settings.workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    settings = ctx.settings
    http = guarded_http_client(AddressPolicy.parse(settings.http_allow))
    # Code tools must not see agora's data (NATS credentials, the workspace, DuckDB) or keys.
    secrets = (settings.nats_creds, settings.tls_key, settings.tls_cert)
    limits = SandboxLimits(
        cpu_s=settings.sandbox_cpu_s,
        memory_bytes=settings.sandbox_memory_mb * 1024 * 1024,
        processes=settings.sandbox_processes,
        wall_s=settings.sandbox_wall_s,
    )
    sandbox = Sandbox(
        limits,
        hide=[settings.data_dir, workspace, *(path for path in secrets if path is not None)],
        # As many programs at once as tasks the executor runs at once: none fails for want
        # of a slot; past that they wait with their task.
        concurrency=settings.executor_concurrency,
    )
    tools = ToolContext(workspace=workspace, http=http, sandbox=sandbox)
    registry = ToolRegistry.builtin()
    mcp = connected_tools(ctx, registry)
    runner = ToolRunner(registry, tools, announce_after_s=settings.call_announce_after_s)
    react_config = ReactConfig(
        tools=registry.specs(),
        prompt=react_prompt(),
        max_steps=ctx.settings.react_max_steps,
        timer_threshold_s=settings.timer_threshold_s,
    )

    history = GoalHistory(ctx.nc, outputs=ctx.outputs)
    timers = ScheduledTimers(ctx.js, settings.timer_threshold_s)
    backoff = Backoff(settings.retry_backoff_s, settings.retry_backoff_max_s)
    cancellations = Cancellations()
    doorbells: list[CoreSubscription] = []

    heard = _doorbell(cancellations, history, timers)

    async def follow_cancellations() -> None:
        for tag in MANIFEST.followed_tags:
            doorbells.append(await ctx.nc.subscribe(event_type_filter(tag), cb=heard))

    async def start() -> None:
        await follow_cancellations()
        # MCP servers are connected (or found unreachable) before the first task is taken.
        await mcp.start(settings.mcp_start_wait_s)

    async def stop() -> None:
        for doorbell in doorbells:
            await doorbell.unsubscribe()
        await mcp.close()
        await http.aclose()

    async def publish(events: Sequence[Event], *, expected_last_seq: int) -> list[PubAck]:
        return await ctx.publish(events, expected_last_seq=expected_last_seq)

    async def publish_unguarded(events: Sequence[Event]) -> None:
        # ReAct steps are not yet guarded by the goal's last sequence (docs/architecture.md).
        await ctx.publish(events)

    async def run_react(
        task: TaskScheduled, *, redelivered: bool, history: Sequence[Event] | None = None
    ) -> None:
        await execute_react(
            task,
            redelivered=redelivered,
            config=react_config,
            runner=runner,
            llm=ctx.llm,
            log=ctx.goal_log,
            publish=publish_unguarded,
            now=ctx.now,
            producer=ctx.producer,
            cancellations=cancellations,
            timers=timers,
            history=history,
        )

    async def resume_waiting_call(ended: Event, _delivery: Delivery) -> None:
        assert isinstance(ended, ApprovalGranted | ApprovalDenied | TimerFired)

        async def resume(task: TaskScheduled, history: Sequence[Event]) -> None:
            await run_react(task, redelivered=True, history=history)

        await resume_react(ended, log=ctx.goal_log, resume=resume)

    async def run_task(task: Event, delivery: Delivery) -> None:
        assert isinstance(task, TaskScheduled)
        if task.tool == REACT_TOOL:
            await run_react(task, redelivered=delivery.redelivered)
        else:
            await execute_task(
                task,
                task_seq=delivery.stream_seq,
                redelivered=delivery.redelivered,
                runner=runner,
                log=history,
                publish=publish,
                now=ctx.now,
                producer=ctx.producer,
                cancellations=cancellations,
                timers=timers,
                backoff=backoff,
            )

    async def on_wakeup(delivery: Delivery) -> None:
        # Undecodable bytes raise DecodeError: the consume loop dead-letters them.
        wakeup = decode_wakeup(delivery.data)
        await wake_task(
            wakeup.goal_id,
            wakeup.timer_id,
            log=history,
            publish=publish,
            timers=timers,
            now=ctx.now,
            producer=ctx.producer,
            runner=runner,
            cancellations=cancellations,
            backoff=backoff,
        )

    return ServiceParts(
        [
            Subscription(
                ctx.spec(EVENTS_STREAM),
                ctx.routed(
                    EVENTS_STREAM,
                    {
                        TaskScheduled: run_task,
                        ApprovalGranted: resume_waiting_call,
                        ApprovalDenied: resume_waiting_call,
                        TimerFired: resume_waiting_call,
                    },
                ),
                ctx.settings.executor_concurrency,
            ),
            Subscription(ctx.spec(INTAKE_STREAM), on_wakeup, ctx.settings.concurrency),
        ],
        on_start=start,
        on_stop=stop,
        tasks=[mcp.keep_connected],
    )


def _doorbell(
    cancellations: Cancellations, history: GoalHistory, timers: ScheduledTimers
) -> Callable[[Msg], Awaitable[None]]:
    """What hearing a followed ``goal_cancelled`` / ``iteration_interrupted`` does: running
    calls it stops are told, and the tasks of the goal on a durable timer are woken."""

    async def heard(msg: Msg) -> None:
        goal_id = goal_id_from_subject(msg.subject)
        if goal_id is None:
            return
        try:
            cancellations.hear(decode_event(msg.data))
        except DecodeError as exc:  # only a prompt: the guarded writes still find the stop
            log.warning("stop_unreadable", goal_id=goal_id, error=str(exc))
            return
        try:
            await wake_cancelled_timers(goal_id, log=history, timers=timers)
        except Exception as exc:  # only a prompt: the timer still wakes the task when due
            log.warning("cancelled_timers_not_woken", goal_id=goal_id, error=str(exc))

    return heard


def connected_tools(ctx: ServiceContext, registry: ToolRegistry) -> McpTools:
    """The configured MCP servers and A2A agents, their tools joining ``registry`` as each
    connection lists them (each listing recorded as ``tools_listed``)."""
    recorder = ListingRecorder(ctx.nc, ctx.publish, producer=ctx.producer, now=ctx.now)

    async def listed(connection: ToolConnection) -> None:
        server = connection.server
        registry.replace_origin(
            server.origin,
            connection_registered(server.name, server.origin, connection.listing.specs, mcp),
        )
        await recorder.record(connection)

    servers = parse_servers(ctx.settings.mcp_servers)
    agents = parse_agents(ctx.settings.a2a_agents)
    check_names(agents, (server.name for server in servers))
    mcp = McpTools(servers, on_listing=listed, agents=agents)
    return mcp


def connection_registered(
    server: str, origin: str, specs: Mapping[str, ToolSpec], mcp: McpTools
) -> list[RegisteredTool]:
    """A connection's listed tools (an MCP server's, an A2A agent's) as registry entries:
    calls go to that connection, and all of them share one circuit breaker, keyed by its
    origin (``mcp:<server>``, ``a2a:<agent>``)."""

    def implementation(tool: str) -> ToolImplementation:
        async def run(arguments: Any, _ctx: ToolContext) -> ToolResult:
            text, structured = await mcp.call(server, tool, arguments)
            return ToolResult(text, structured)

        return run

    return [
        RegisteredTool(spec, implementation(name), lambda _args: origin)
        for name, spec in specs.items()
    ]
