"""agora's AG-UI endpoint: ``POST /agui`` takes a ``RunAgentInput`` (JSON) and answers the run's
AG-UI events as server-sent events (the AG-UI HTTP+SSE transport), encoded by the
``ag-ui-protocol`` package's encoder. Every request needs the bearer token.

A body that is not a valid ``RunAgentInput``, or one that cannot become a goal, is answered
``422`` with what is wrong, and nothing is submitted; a body over :data:`MAX_BODY_BYTES` is
``413``. Once the stream has begun, an error of agora's (the bus went away) ends it with
``RUN_ERROR``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nats.errors
from ag_ui.core import RunAgentInput, RunErrorEvent
from ag_ui.encoder import EventEncoder
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from events.errors import AgoraError
from infra.agui_server.inputs import InputNotUnderstoodError, command_from_input
from infra.agui_server.stream import RunStream
from infra.clients.goals import AgoraClient
from infra.logging import get_logger
from infra.platform.asgi import BearerRequired

__all__ = ["AGUI_PATH", "MAX_BODY_BYTES", "build_app"]

AGUI_PATH = "/agui"
MAX_BODY_BYTES = 1024 * 1024
_MAX_ERRORS_SHOWN = 20
log = get_logger("agora.agui")


def _unprocessable(message: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=422)


async def _body(request: Request) -> bytes | Response:
    """The request's body, read no further than :data:`MAX_BODY_BYTES`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _too_large()
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _too_large()
    except ClientDisconnect:
        return Response(status_code=400)
    return bytes(body)


def _too_large() -> JSONResponse:
    return JSONResponse(
        {"error": f"the RunAgentInput is larger than {MAX_BODY_BYTES} bytes"}, status_code=413
    )


def _validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """What pydantic found, without echoing the input back (it may be huge or hostile)."""
    return [
        {"loc": [str(part) for part in error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False, include_context=False)[
            :_MAX_ERRORS_SHOWN
        ]
    ]


def build_app(client: AgoraClient, *, token: str) -> Starlette:
    """``POST /agui`` behind the bearer token."""

    async def run_agent(request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, Response):
            return body
        try:
            run = RunAgentInput.model_validate_json(body)
        except ValidationError as exc:
            return _unprocessable("the body is not a valid RunAgentInput", _validation_errors(exc))
        try:
            command = command_from_input(run)
        except InputNotUnderstoodError as exc:
            return _unprocessable(str(exc))
        stream = RunStream(client, command, thread_id=run.thread_id, run_id=run.run_id)
        try:
            await stream.start()
        except AgoraError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        encoder = EventEncoder(accept=request.headers.get("accept", ""))
        return StreamingResponse(
            _encoded(stream, encoder),
            media_type=encoder.get_content_type(),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return Starlette(
        routes=[Route(AGUI_PATH, run_agent, methods=["POST"])],
        middleware=[Middleware(BearerRequired, token=token)],
    )


async def _encoded(stream: RunStream, encoder: EventEncoder) -> AsyncIterator[str]:
    try:
        async for event in stream.events():
            yield encoder.encode(event)
    except (AgoraError, nats.errors.Error) as exc:
        log.warning("an AG-UI run's stream ended early", error=str(exc))
        yield encoder.encode(RunErrorEvent(message=str(exc), code="agora_error"))
