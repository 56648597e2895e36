"""One remote A2A agent, reached with the official SDK's client: its card, and delegations.

Connecting reads the agent card (its URL is configured) and makes the SDK's client for the
card's JSON-RPC interface. A delegation sends one message and follows the task to its end:
streamed when the card offers streaming, else the blocking ``SendMessage``, then ``GetTask``
while the task still runs. A delegation given up (its timeout, a cancelled goal) asks the
agent to cancel the task. Every failure becomes a ``ToolError`` that says what happened and
whether a retry can help.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import httpx
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.client.errors import A2AClientError, A2AClientTimeoutError
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    SendMessageRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import A2AError
from google.protobuf.json_format import ParseError

from events.errors import ToolError
from infra.a2a_client.config import A2AAgent
from infra.a2a_client.results import (
    agent_listing,
    answer_of,
    folded,
    message_of,
    protocol_version_of,
)
from infra.environment import process_environment
from infra.logging import get_logger, redact_stdlib_loggers, register_secret
from infra.mcp.base import ConnectionBase, describe_error
from infra.mcp.config import resolve_headers

__all__ = ["A2AConnection"]

log = get_logger("agora.a2a")
# The SDK and its HTTP client log through the standard library: tokens stay out there too.
_STDLIB_LOGGERS = ("a2a", "httpx", "httpcore")

_CANCEL_TIMEOUT_S = 5.0
# How often a task the agent answered before it ended is asked for again.
_POLL_MIN_S = 0.2
_POLL_MAX_S = 5.0
_RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_INTERRUPTED = frozenset({TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED})


class A2AConnection(ConnectionBase[Client]):
    """An agent's card, client and one-tool listing. ``on_listing`` hears every new listing
    (a card that changed), as an MCP server's connection does."""

    def __init__(
        self,
        agent: A2AAgent,
        on_listing: Callable[[A2AConnection], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(on_listing)
        self.server = agent
        self._http: httpx.AsyncClient | None = None

    @property
    def label(self) -> str:
        return self.server.label

    def _unreachable(self) -> str:
        card = self.server.describe()
        return f"{self.label} cannot be reached: {self.problem} (its card at {card})"

    async def run(
        self,
        tool: str,  # noqa: ARG002 -- an agent is one tool: its name says nothing more
        arguments: dict[str, Any],
    ) -> tuple[str, Any]:
        """(text, structured) of delegating ``arguments`` (the message) to the agent."""
        if self._client is None:
            await self.connect()
        client = self._client
        if client is None:  # dropped meanwhile by a concurrent failure
            raise ToolError(
                f"A2A agent {self.server.name} disconnected: {self.problem}", transient=True
            )
        task_ids: list[str] = []
        try:
            answer = await self._delegate(client, arguments, task_ids)
        except asyncio.CancelledError:
            for task_id in task_ids[-1:]:
                self._cancel_soon(client, task_id)
            raise
        except ToolError:
            raise
        except Exception as exc:
            raise await self._failure(client, exc) from exc
        return answer

    async def _delegate(
        self, client: Client, arguments: dict[str, Any], task_ids: list[str]
    ) -> tuple[str, Any]:
        message = message_of(arguments, message_id=str(uuid.uuid4()))
        current: Task | Message | None = None
        async for response in client.send_message(SendMessageRequest(message=message)):
            current = folded(current if isinstance(current, Task) else None, response)
            if isinstance(current, Task) and current.id and not task_ids:
                task_ids.append(current.id)
        if current is None:
            raise ToolError(f"A2A agent {self.server.name} answered nothing")
        if isinstance(current, Task) and current.status.state in _INTERRUPTED:
            # agora cannot answer it: the task would wait for ever on the agent's side.
            self._cancel_soon(client, current.id)
        delay = _POLL_MIN_S
        while (done := answer_of(self.server.name, current)) is None:
            # The agent answered before its task ended (it does not stream, or the stream
            # ended early): ask for the task until it has.
            assert isinstance(current, Task)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)
            current = await client.get_task(GetTaskRequest(id=current.id))
        return done.text, done.structured

    async def _failure(  # noqa: PLR0911 -- one answer per kind of failure
        self, client: Client, exc: Exception
    ) -> ToolError:
        """``exc`` as a ``ToolError``: retried when the agent could not be reached or was
        overloaded, permanent when it answered something wrong."""
        name = self.server.name
        cause = exc.__cause__
        if isinstance(exc, A2AClientTimeoutError) or isinstance(cause, httpx.TimeoutException):
            return ToolError(f"A2A agent {name} did not answer in time: {exc}", transient=True)
        if isinstance(cause, httpx.HTTPStatusError):
            status = cause.response.status_code
            if status in _RETRIED_STATUSES:
                return ToolError(f"A2A agent {name} answered HTTP {status}", transient=True)
            hint = " (check the agent's URL and its credentials)" if status in (401, 403) else ""
            return ToolError(f"A2A agent {name} refused the delegation: HTTP {status}{hint}")
        if isinstance(cause, httpx.RequestError) or isinstance(exc, httpx.TransportError):
            await self._lost(client, describe_error(cause or exc))
            return ToolError(
                f"A2A agent {name} cannot be reached: {describe_error(cause or exc)}; agora reads "
                "its card again on the next call",
                transient=True,
            )
        if isinstance(exc, A2AClientError | ParseError | ValueError | json.JSONDecodeError):
            return ToolError(
                f"A2A agent {name} answered with something that is not A2A: {describe_error(exc)}"
            )
        if isinstance(exc, A2AError):
            return ToolError(f"A2A agent {name} refused the delegation: {describe_error(exc)}")
        return ToolError(f"A2A agent {name} failed during the delegation: {describe_error(exc)}")

    def _cancel_soon(self, client: Client, task_id: str) -> None:
        """Ask the agent to cancel a task agora gave up on; it need not answer."""

        async def cancel() -> None:
            async with asyncio.timeout(_CANCEL_TIMEOUT_S):
                await client.cancel_task(CancelTaskRequest(id=task_id))
            log.info("a2a_task_cancel_sent", agent=self.server.name, task_id=task_id)

        self._in_background(cancel)

    def relist_soon(self) -> None:
        """Read the card again in the background (it may have changed)."""
        if self._client is not None:
            self._in_background(self._read_card, alone=True)

    # -- internals ---------------------------------------------------------------------

    async def _open(self) -> None:
        # Header values may name any variable the user's configuration chose (its secrets).
        headers, secrets = resolve_headers(self.server, process_environment())
        for secret in secrets:
            register_secret(secret)
        redact_stdlib_loggers(*_STDLIB_LOGGERS)
        # No read timeout: a delegation may take long, and each has its own timeout in the
        # tool runner.
        self._http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30.0, read=None))
        card = await self._read_card()
        self._client = ClientFactory(ClientConfig(httpx_client=self._http)).create(card)

    async def _read_card(self) -> AgentCard:
        assert self._http is not None
        resolver = A2ACardResolver(self._http, self.server.card_url, agent_card_path="")
        card = await resolver.get_agent_card()
        self.protocol_version = protocol_version_of(card)
        await self._take_listing(agent_listing(self.server, card))
        return card

    async def _drop(self) -> None:
        client, http = self._client, self._http
        self._client = self._http = None
        if client is not None:
            with suppress(Exception):
                await client.close()
        if http is not None:
            await http.aclose()
