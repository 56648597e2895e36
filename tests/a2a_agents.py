"""Real A2A agents for tests, built with the official SDK and served over real HTTP.

One uvicorn server on a free port holds several agents, each under its own path with its
own card (``<base>/<name>/.well-known/agent-card.json``):

- ``helper`` (an SDK ``AgentExecutor``, bearer token required): answers ``helped with:
  <text>`` as an artifact (and any data part as a second one); the text ``hang`` never
  ends (until cancelled), ``refuse`` fails the task with a reason, ``ask`` wants input.
- ``junk``: its card is valid, its JSON-RPC endpoint answers a JSON object that is no
  JSON-RPC response.
- ``down``: its card names a JSON-RPC URL where nothing listens.
- ``later`` (hand-written JSON-RPC, no streaming): answers ``SendMessage`` with its task
  still working, and ``GetTask`` with it working once more, then completed (``later done``).
- ``docs`` (with ``documents``): answers the text of ``<documents>/<text>.txt`` as it is,
  as an artifact; the injection-safety tests put hostile text there.

Every message the helper received is in ``calls``, every cancel in ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.constants import PROTOCOL_VERSION_1_0, TransportProtocol
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infra.platform.asgi import BearerRequired
from infra.platform.sockets import listening_socket

__all__ = ["RunningAgents", "serve_agents"]


async def _opened(context: RequestContext, event_queue: EventQueue) -> TaskUpdater:
    """The task of ``context`` enqueued (the SDK wants it before any update), and its updater."""
    assert context.task_id is not None
    assert context.context_id is not None
    await event_queue.enqueue_event(
        Task(
            id=context.task_id,
            context_id=context.context_id,
            status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
            history=[context.message] if context.message else [],
        )
    )
    return TaskUpdater(event_queue, context.task_id, context.context_id)


@dataclass
class Helper(AgentExecutor):
    calls: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        self.calls.append(text)
        updater = await _opened(context, event_queue)
        await updater.start_work()
        if text == "hang":
            await asyncio.Event().wait()
        if text == "refuse":
            await updater.failed(updater.new_agent_message([Part(text="I do not do that")]))
            return
        if text == "ask":
            await updater.requires_input(updater.new_agent_message([Part(text="which one?")]))
            return
        await updater.add_artifact([Part(text=f"helped with: {text}")], name="answer")
        data = [p for p in (context.message.parts if context.message else []) if p.HasField("data")]
        if data:
            await updater.add_artifact(data, name="data")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None
        assert context.context_id is not None
        self.cancelled.append(context.task_id)
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def _card(name: str, rpc_url: str, *, streaming: bool) -> AgentCard:
    return AgentCard(
        name=name,
        description=f"the {name} agent of agora's tests",
        supported_interfaces=[
            AgentInterface(
                url=rpc_url,
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=PROTOCOL_VERSION_1_0,
            )
        ],
        version="1",
        capabilities=AgentCapabilities(streaming=streaming),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="help", name="Help", description="helps", tags=["help"])],
    )


@dataclass
class Documents(AgentExecutor):
    directory: Path
    fetched: list[str] = field(default_factory=list)

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        name = context.get_user_input()
        self.fetched.append(name)
        updater = await _opened(context, event_queue)
        text = (self.directory / f"{name}.txt").read_text(encoding="utf-8")
        await updater.add_artifact([Part(text=text)], name="document")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


@dataclass
class RunningAgents:
    base: str
    helper: Helper
    documents: Documents | None = None
    # The JSON-RPC methods the later agent was asked, in order.
    asked_later: list[str] = field(default_factory=list)

    def card_url(self, name: str) -> str:
        return f"{self.base}/{name}/.well-known/agent-card.json"


@contextlib.asynccontextmanager
async def serve_agents(
    token: str, *, streaming: bool = True, documents: Path | None = None
) -> AsyncIterator[RunningAgents]:
    """The agents on a free port, until the block ends (``docs`` when given ``documents``)."""
    sock = listening_socket("127.0.0.1", 0)
    # Bound, never listening: a connection to it is refused, every time.
    nobody = socket.socket()
    nobody.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    helper = Helper()
    helper_card = _card("helper", f"{base}/helper/a2a", streaming=streaming)
    handler = DefaultRequestHandler(helper, InMemoryTaskStore(), helper_card)

    async def junk(_request: Request) -> Response:
        return JSONResponse({"hello": "this is not JSON-RPC"})

    asked: list[str] = []

    async def later(request: Request) -> Response:
        body = await request.json()
        asked.append(body["method"])
        task: dict[str, object] = {"id": "t-later", "contextId": "c-later"}
        if asked.count("GetTask") < 2:
            task["status"] = {"state": "TASK_STATE_WORKING"}
        else:
            task["status"] = {"state": "TASK_STATE_COMPLETED"}
            task["artifacts"] = [{"artifactId": "a", "parts": [{"text": "later done"}]}]
        result = {"task": task} if body["method"] == "SendMessage" else task
        return JSONResponse({"jsonrpc": "2.0", "id": body["id"], "result": result})

    routes = [
        *create_agent_card_routes(helper_card, card_url="/helper/.well-known/agent-card.json"),
        *create_jsonrpc_routes(handler, "/helper/a2a"),
        *create_agent_card_routes(
            _card("junk", f"{base}/junk/a2a", streaming=False),
            card_url="/junk/.well-known/agent-card.json",
        ),
        Route("/junk/a2a", junk, methods=["POST"]),
        *create_agent_card_routes(
            _card("later", f"{base}/later/a2a", streaming=False),
            card_url="/later/.well-known/agent-card.json",
        ),
        Route("/later/a2a", later, methods=["POST"]),
        *create_agent_card_routes(
            _card("down", f"http://127.0.0.1:{nobody.getsockname()[1]}/a2a", streaming=False),
            card_url="/down/.well-known/agent-card.json",
        ),
    ]
    docs = Documents(documents) if documents is not None else None
    if docs is not None:
        docs_card = _card("docs", f"{base}/docs/a2a", streaming=False)
        routes += [
            *create_agent_card_routes(docs_card, card_url="/docs/.well-known/agent-card.json"),
            *create_jsonrpc_routes(
                DefaultRequestHandler(docs, InMemoryTaskStore(), docs_card), "/docs/a2a"
            ),
        ]
    app = BearerRequired(
        Starlette(routes=routes),
        token=token,
        open_paths=(
            "/junk/.well-known/agent-card.json",
            "/junk/a2a",
            "/later/.well-known/agent-card.json",
            "/later/a2a",
            "/down/.well-known/agent-card.json",
        ),
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield RunningAgents(base, helper, docs, asked)
    finally:
        server.should_exit = True
        await serving
        nobody.close()
