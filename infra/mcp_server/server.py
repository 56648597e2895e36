"""agora as an MCP server: its tools and resources, over agora's own client library.

Every tool is a thin adapter over :class:`agora.client.AgoraClient` (NATS, as the ``client``
identity): no tool opens the projection file, and a call can do no more than that identity
may. SQL goes to the projector over ``agora.query`` and meets the guard every query meets.
The transports (stdio, Streamable HTTP) are the SDK's; :mod:`infra.mcp_server.http` adds the
bearer token.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from typing import Annotated, Any

import msgspec
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError as McpToolError
from mcp_types import ToolAnnotations
from pydantic import AnyHttpUrl, Field

from events.errors import AgoraError
from events.model import Event
from infra.clients.goals import AgoraClient, CommandTimeoutError, check_goal_id, is_terminal
from infra.clients.memory import ask_memory
from infra.mcp_server.intake_schema import listed_as_intake
from infra.mcp_server.results import (
    goal_outcome,
    progress_line,
    rows_of,
    still_running,
    view_schema,
)
from projections.schema import USER_VIEWS
from services.memory.protocol import MemoryRequest

__all__ = ["SERVER_NAME", "TOOL_NAMES", "build_server"]

SERVER_NAME = "agora"
TOOL_NAMES = (
    "submit_goal",
    "get_goal",
    "wait_goal",
    "cancel_goal",
    "query",
    "trajectory",
    "memory_search",
)
_READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
_INSTRUCTIONS = (
    "agora runs goals as event-sourced multi-agent work. submit_goal starts one (give a "
    "command_id to make retries safe), wait_goal follows it to its outcome with progress, "
    "get_goal and trajectory show where it stands, cancel_goal stops it. query runs one "
    "read-only SQL SELECT over the views (goals, tasks, facts, trajectory, events, tool_stats, "
    "goal_stats); their columns are the resources agora://views/<view>/schema."
)


@contextmanager
def _as_tool_error() -> Iterator[None]:
    """agora's errors say what to do: the caller reads them as the tool's error result."""
    try:
        yield
    except AgoraError as exc:
        raise McpToolError(str(exc)) from exc


def _intake(name: str, description: str) -> Any:
    """A submit_goal parameter, listed with the intake's own schema of field ``name``."""
    return Field(description=description, json_schema_extra=listed_as_intake(name))


def _goal_sql(view: str, goal_id: str) -> str:
    # check_goal_id admits one subject token only: no quote can reach the SQL.
    return f"SELECT * FROM {view} WHERE goal_id = '{check_goal_id(goal_id)}'"  # noqa: S608


def build_server(client: AgoraClient, *, token_verifier: TokenVerifier | None = None) -> MCPServer:
    """The MCP server of one agora connection. Each tool below only translates.

    With ``token_verifier`` its HTTP endpoint refuses a request without a bearer token the
    verifier accepts (401). The SDK's ``AuthSettings`` insists on an issuer URL: agora's
    token is a shared secret that no authorization server issues, and with neither a
    provider nor a resource URL configured the SDK mounts no OAuth route that would name it.
    """
    auth = (
        AuthSettings(issuer_url=AnyHttpUrl("http://localhost"), resource_server_url=None)
        if token_verifier is not None
        else None
    )
    server: MCPServer = MCPServer(
        SERVER_NAME,
        title="agora",
        instructions=_INSTRUCTIONS,
        version=_agora_version(),
        token_verifier=token_verifier,
        auth=auth,
        log_level="WARNING",
    )

    @server.tool(annotations=ToolAnnotations(idempotentHint=True, openWorldHint=False))
    async def submit_goal(
        text: Annotated[str, _intake("text", "what the goal should achieve")],
        *,
        steps: Annotated[
            list[dict[str, Any]] | None,
            _intake(
                "steps",
                'explicit steps: [{"tool": "calculator", "args": {"expression": "17*23"}}, …]; '
                'with "id" and "depends_on" they form a DAG, and "{{steps.<id>.output}}" in '
                "args is an earlier step's output",
            ),
        ] = None,
        expect: Annotated[
            dict[str, Any] | None,
            _intake("expect", 'what the result must satisfy, e.g. {"contains": "391"}'),
        ] = None,
        goal_id: Annotated[
            str | None, _intake("goal_id", "letters, digits, - and _ (default: derived)")
        ] = None,
        command_id: Annotated[
            str | None,
            _intake("command_id", "idempotency key: the same command_id makes no second goal"),
        ] = None,
        max_iterations: Annotated[
            int | None, _intake("max_iterations", "plan revisions allowed")
        ] = None,
        metadata: Annotated[
            dict[str, Any] | None, _intake("metadata", "yours, kept with the goal")
        ] = None,
        allowed_tools: Annotated[
            list[str] | None,
            _intake("allowed_tools", "untrusted (MCP) tools the goal's tasks may call"),
        ] = None,
        approval: Annotated[
            dict[str, Any] | None,
            _intake("approval", 'tools whose calls wait for approval: {"require": ["echo"]}'),
        ] = None,
        max_tokens: Annotated[int | None, _intake("max_tokens", "LLM token budget")] = None,
        max_cost_usd: Annotated[float | None, _intake("max_cost_usd", "LLM cost budget")] = None,
        priority: Annotated[
            int | None, _intake("priority", "among goals waiting for a flow limit, higher first")
        ] = None,
        on_message: Annotated[
            str | None,
            _intake("on_message", "input while it runs: reject, enqueue or interrupt"),
        ] = None,
    ) -> dict[str, Any]:
        """Submit a goal (agora's intake command; `agora schema` has its JSON Schema). Returns
        its goal_id at once; a bad command is rejected by the planner with a reason that
        wait_goal and get_goal show."""
        fields = {
            "text": text,
            "steps": steps,
            "expect": expect,
            "goal_id": goal_id,
            "command_id": command_id,
            "max_iterations": max_iterations,
            "metadata": metadata,
            "allowed_tools": allowed_tools,
            "approval": approval,
            "max_tokens": max_tokens,
            "max_cost_usd": max_cost_usd,
            "priority": priority,
            "on_message": on_message,
        }
        with _as_tool_error():
            sent = await client.submit({k: v for k, v in fields.items() if v is not None})
        return {"goal_id": sent.goal_id, "command_id": sent.command_id, "duplicate": sent.duplicate}

    @server.tool(annotations=_READ_ONLY)
    async def get_goal(goal_id: str) -> dict[str, Any]:
        """The goal's row of the goals view (status, result, reason, score…) and its tasks."""
        with _as_tool_error():
            goal = rows_of(await client.query(_goal_sql("goals", goal_id)))
            if not goal:
                raise McpToolError(
                    f"no goal {goal_id} in the views (yet): check the id, or call wait_goal"
                )
            tasks = rows_of(
                await client.query(_goal_sql("tasks", goal_id) + " ORDER BY iteration, task_id")
            )
        return {"goal": goal[0], "tasks": tasks}

    @server.tool(annotations=_READ_ONLY)
    async def wait_goal(
        goal_id: str,
        ctx: Context,
        timeout_s: Annotated[
            float, Field(gt=0, le=3600, description="how long to wait; the goal runs on")
        ] = 120.0,
    ) -> dict[str, Any]:
        """Follow the goal from its first event to its outcome, sending a progress
        notification per event. Not finished in time: finished=false, and it keeps running."""
        events: list[Event] = []
        started = time.monotonic()
        with _as_tool_error():
            check_goal_id(goal_id)
            try:
                async with (
                    asyncio.timeout(timeout_s),
                    aclosing(_generator(client.follow_with_seq(goal_id))) as following,
                ):
                    async for seq, event in following:
                        events.append(event)
                        await ctx.report_progress(len(events), None, progress_line(event))
                        if is_terminal(event):
                            return goal_outcome(goal_id, events, seq)
            except TimeoutError:
                pass
        return still_running(goal_id, events, time.monotonic() - started)

    @server.tool(annotations=ToolAnnotations(destructiveHint=True, idempotentHint=True))
    async def cancel_goal(
        goal_id: str,
        reason: str = "",
        command_id: Annotated[
            str | None, Field(description="idempotency key: a resent cancel is answered once")
        ] = None,
        wait_s: Annotated[
            float, Field(gt=0, le=300, description="how long to wait for the planner's answer")
        ] = 10.0,
    ) -> dict[str, Any]:
        """Cancel a running or paused goal: its running tasks stop, nothing new is scheduled.
        Returns the planner's answer (goal_cancelled, or command_rejected with the reason)."""
        with _as_tool_error():
            sent = await client.cancel(goal_id, reason=reason, command_id=command_id)
            try:
                answer = await client.answer(sent, timeout_s=wait_s)
            except CommandTimeoutError as exc:
                return {"answered": False, "command_id": sent.command_id, "note": str(exc)}
        plain = msgspec.to_builtins(answer)
        return {
            "answered": True,
            "command_id": sent.command_id,
            "answer": plain["type"],
            "reason": plain.get("reason", ""),
        }

    @server.tool(annotations=_READ_ONLY)
    async def query(
        sql: Annotated[
            str,
            Field(description="one read-only SELECT (or WITH … SELECT) over agora's views"),
        ],
        max_rows: Annotated[int, Field(ge=1, le=10_000)] = 1000,
        min_seq: Annotated[
            int,
            Field(ge=0, description="answer once the views include this stream sequence"),
        ] = 0,
    ) -> dict[str, Any]:
        """Read-only SQL over the views. Anything but one SELECT (writes, DDL, ATTACH, COPY,
        file readers, settings) is refused with the reason."""
        with _as_tool_error():
            reply = await client.query(sql, max_rows=max_rows, min_seq=min_seq)
        return {
            "columns": reply.columns,
            "rows": rows_of(reply),
            "truncated": reply.truncated,
            "last_seq": reply.last_seq,
        }

    @server.tool(annotations=_READ_ONLY)
    async def trajectory(
        goal_id: str,
        min_seq: Annotated[int, Field(ge=0)] = 0,
    ) -> dict[str, Any]:
        """The goal step by step: each event's type, actor, summary, duration, tokens, cost."""
        with _as_tool_error():
            reply = await client.trajectory(goal_id, min_seq=min_seq)
        return {"goal_id": goal_id, "steps": rows_of(reply)}

    @server.tool(annotations=_READ_ONLY)
    async def memory_search(
        query: str,
        k: Annotated[int, Field(ge=1, le=100)] = 5,
        goal_id: Annotated[str | None, Field(description="only items from this goal")] = None,
        kinds: Annotated[list[str] | None, Field(description="observation, lesson…")] = None,
    ) -> dict[str, Any]:
        """What agora's memory recalls for the query, best first, with provenance (the goal
        and event each item was learned from)."""
        request = MemoryRequest(
            op="search", query=query, k=k, goal_id=goal_id, kinds=tuple(kinds or ())
        )
        with _as_tool_error():
            reply = await ask_memory(client.nc, request)
        return {"items": msgspec.to_builtins(reply.items)}

    for view in USER_VIEWS:
        _add_schema_resource(server, client, view)
    return server


def _generator(
    events: AsyncIterator[tuple[int, Event]],
) -> AsyncGenerator[tuple[int, Event], None]:
    # follow_with_seq is an async generator; aclosing needs it said, to unsubscribe at once
    # when the wait ends before the log does.
    assert isinstance(events, AsyncGenerator)
    return events


def _agora_version() -> str:
    try:
        return importlib.metadata.version("agora")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return ""


def _add_schema_resource(server: MCPServer, client: AgoraClient, view: str) -> None:
    async def describe() -> dict[str, Any]:
        # DESCRIBE is a read-only statement the query guard accepts; the view name is ours.
        return view_schema(view, await client.query(f"DESCRIBE {view}"))

    server.resource(
        f"agora://views/{view}/schema",
        name=f"{view} schema",
        description=f"the columns and types of the {view} view, as the projector has it",
        mime_type="application/json",
    )(describe)
