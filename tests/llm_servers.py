"""Scripted LLM servers for tests: real HTTP on 127.0.0.1, answers decided by the test.

Two flavours speak the wire formats agora's adapters speak: OpenAI-compatible
``POST /v1/chat/completions`` and Anthropic ``POST /v1/messages``. Each request is answered by
the next :class:`Scripted` reply (a queue the test fills, or a callable deciding from the
request); every request received is recorded (:attr:`ScriptedLlmServer.requests`), so a test
can assert what the client sent, when, how many in parallel, or that nothing was sent at all.

A scripted reply is a provider *body* (build one with :func:`openai_reply` /
:func:`anthropic_reply`); when the client asked to stream, the server turns that body into
the provider's SSE events itself, so one script serves both modes. ``raw`` bytes (malformed
JSON, a broken stream) are sent as they are. The server runs in its own thread: a ``delay_s``
never blocks the test's event loop.

Use the ``openai_server`` / ``anthropic_server`` fixtures from ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from infra.settings import LlmEndpoint, Settings

__all__ = [
    "Flavour",
    "ReceivedRequest",
    "Scripted",
    "ScriptedLlmServer",
    "anthropic_reply",
    "llm_settings",
    "openai_reply",
    "scripted_server",
]

Flavour = Literal["openai", "anthropic"]
_PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


@dataclass(frozen=True)
class Scripted:
    """One answer: ``status``, ``headers`` (e.g. Retry-After), a JSON ``body`` or ``raw`` bytes,
    after ``delay_s``. ``sse`` overrides the synthesized stream with these literal events
    (each a JSON-able dict, or a str sent verbatim as a ``data:`` line).
    """

    status: int = 200
    body: dict[str, Any] | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    sse: list[dict[str, Any] | str] | None = None


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]
    received_at: float  # time.monotonic() when the request arrived
    in_flight: int  # requests being answered at that moment, this one included

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


Script = Callable[[ReceivedRequest], Scripted]


def openai_reply(
    content: str | None = "",
    *,
    tool_calls: list[tuple[str, dict[str, Any]]] | None = None,
    model: str = "scripted-gpt",
    tokens_in: int = 10,
    tokens_out: int = 5,
    finish_reason: str | None = None,
) -> Scripted:
    """A Chat Completions answer: text and/or ``(name, arguments)`` tool calls."""
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(tool_calls or [])
    ]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return Scripted(
        body={
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason or ("tool_calls" if calls else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": tokens_in,
                "completion_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
            },
        }
    )


def anthropic_reply(
    text: str = "",
    *,
    tool_uses: list[tuple[str, dict[str, Any]]] | None = None,
    model: str = "scripted-claude",
    tokens_in: int = 10,
    tokens_out: int = 5,
    stop_reason: str | None = None,
) -> Scripted:
    """A Messages API answer: a text block and/or ``(name, input)`` tool_use blocks."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks += [
        {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
        for i, (name, args) in enumerate(tool_uses or [])
    ]
    return Scripted(
        body={
            "id": "msg_scripted",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop_reason or ("tool_use" if tool_uses else "end_turn"),
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        }
    )


def _chunks(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _openai_events(body: dict[str, Any]) -> Iterator[dict[str, Any] | str]:
    choice = body["choices"][0]
    message = choice["message"]
    base = {"id": body.get("id", ""), "object": "chat.completion.chunk", "model": body["model"]}
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    for piece in _chunks(message.get("content") or ""):
        yield {**base, "choices": [{"index": 0, "delta": {"content": piece}}]}
    for index, call in enumerate(message.get("tool_calls") or []):
        head = {"index": index, "id": call["id"], "type": "function"}
        head["function"] = {"name": call["function"]["name"], "arguments": ""}
        yield {**base, "choices": [{"index": 0, "delta": {"tool_calls": [head]}}]}
        for piece in _chunks(call["function"]["arguments"], 8):
            part = {"index": index, "function": {"arguments": piece}}
            yield {**base, "choices": [{"index": 0, "delta": {"tool_calls": [part]}}]}
    finish = {"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason")}
    yield {**base, "choices": [finish]}
    if "usage" in body:
        yield {**base, "choices": [], "usage": body["usage"]}
    yield "[DONE]"


def _anthropic_events(body: dict[str, Any]) -> Iterator[dict[str, Any] | str]:
    usage = body.get("usage", {})
    start = {**body, "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": usage.get("input_tokens", 0), "output_tokens": 0}
    yield {"type": "message_start", "message": start}
    for index, block in enumerate(body["content"]):
        if block["type"] == "text":
            opened: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _chunks(block["text"])]
        else:
            opened = {**block, "input": {}}
            encoded = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _chunks(encoded, 8)]
        yield {"type": "content_block_start", "index": index, "content_block": opened}
        for delta in deltas:
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": body.get("stop_reason")},
        "usage": {"output_tokens": usage.get("output_tokens", 0)},
    }
    yield {"type": "message_stop"}


class ScriptedLlmServer:
    """A provider on 127.0.0.1 whose answers the test scripts. Start with ``with`` or start()."""

    def __init__(self, flavour: Flavour, script: Script | None = None) -> None:
        self.flavour = flavour
        self.requests: list[ReceivedRequest] = []
        self._queue: deque[Scripted] = deque()
        self._script = script
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0
        self.script_errors: list[Exception] = []  # what the test's script raised, if anything
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- scripting ---------------------------------------------------------------------------

    def push(self, *replies: Scripted) -> None:
        """Answer the next requests with ``replies``, in order."""
        with self._lock:
            self._queue.extend(replies)

    def set_script(self, script: Script | None) -> None:
        """Decide answers with ``script`` once the queue is empty (None: queue only)."""
        self._script = script

    @property
    def base_url(self) -> str:
        """What ``AGORA_LLM_BASE_URL`` should be: SDK convention (OpenAI's includes ``/v1``)."""
        host, port = self._httpd.server_address[:2]
        root = f"http://{host!s}:{port}"
        return f"{root}/v1" if self.flavour == "openai" else root

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ScriptedLlmServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> ScriptedLlmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving -----------------------------------------------------------------------------

    def _next(self, request: ReceivedRequest) -> Scripted:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self._script is not None:
            return self._script(request)
        return Scripted(status=500, body={"error": {"message": "the test scripted no answer"}})

    def _received(self, path: str, headers: dict[str, str], raw: bytes) -> ReceivedRequest:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparsable": raw.decode("utf-8", "replace")}
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            request = ReceivedRequest(
                path=path,
                headers=headers,
                body=body,
                received_at=time.monotonic(),
                in_flight=self._in_flight,
            )
            self.requests.append(request)
        return request

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _events(self, reply: Scripted) -> list[dict[str, Any] | str]:
        if reply.sse is not None:
            return reply.sse
        assert reply.body is not None
        maker = _openai_events if self.flavour == "openai" else _anthropic_events
        return list(maker(reply.body))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on ``requests`` instead."""

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = server._received(self.path, headers, raw)
                try:
                    if self.path != _PATHS[server.flavour]:
                        self._send(404, b'{"error": {"message": "no such path"}}', {})
                        return
                    try:
                        reply = server._next(request)
                    except Exception as exc:  # a broken script: say so instead of hanging
                        server.script_errors.append(exc)
                        reply = Scripted(status=500, body={"error": f"script failed: {exc!r}"})
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    streamed = request.stream and reply.status == 200 and reply.raw is None
                    if streamed:
                        self._stream(server._events(reply), reply.headers)
                    else:
                        payload = reply.raw if reply.raw is not None else json.dumps(reply.body)
                        data = payload if isinstance(payload, bytes) else payload.encode()
                        self._send(reply.status, data, reply.headers)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): nothing left to answer
                finally:
                    server._done()

            def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, events: list[dict[str, Any] | str], headers: dict[str, str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                for event in events:
                    if isinstance(event, str):
                        frame = f"data: {event}\n\n"
                    elif server.flavour == "anthropic":
                        frame = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
                    else:
                        frame = f"data: {json.dumps(event)}\n\n"
                    self.wfile.write(frame.encode())
                    self.wfile.flush()
                self.close_connection = True

        return Handler


@contextlib.contextmanager
def scripted_server(flavour: Flavour, script: Script | None = None) -> Iterator[ScriptedLlmServer]:
    with ScriptedLlmServer(flavour, script) as server:
        yield server


def llm_settings(settings: Settings, *servers: ScriptedLlmServer, **overrides: object) -> Settings:
    """``settings`` with ``servers`` as the LLM chain (first = primary), fast retries."""
    endpoints = tuple(
        LlmEndpoint(
            provider=server.flavour,
            base_url=server.base_url,
            model=f"scripted-{server.flavour}",
            api_key=f"sk-test-{server.flavour}-secret-key",
        )
        for server in servers
    )
    fast: dict[str, object] = {
        "llm_endpoints": endpoints,
        "llm_timeout_s": 5.0,
        "llm_retries": 2,
        "llm_backoff_s": 0.01,
        "llm_retry_after_max_s": 2.0,
        **overrides,
    }
    return replace(settings, **fast)  # type: ignore[arg-type]
