"""The Anthropic Messages API.

System messages become the top-level ``system``; tool results become ``tool_result`` blocks
of a user turn (consecutive ones share a turn, as the API requires). Structured output uses a
forced tool: the response schema is offered as a tool named ``schema_name`` and, when the
request has no tools of its own, ``tool_choice`` forces it; the tool's input is the JSON
content of the reply (it is not reported as a tool call).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from infra.llm.provider import DeltaSink, parse_arguments, require, require_json_content
from infra.llm.transport import AttemptError, post_json, post_sse
from infra.settings import LlmEndpoint
from services.llm.messages import ChatMessage, LlmReply, LlmRequest, ToolCall

__all__ = ["API_VERSION", "AnthropicMessages", "anthropic_body"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the API requires a cap; requests without one get this


def _turns(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content,
            }
            previous = turns[-1] if turns else None
            if previous and previous["role"] == "user" and isinstance(previous["content"], list):
                previous["content"].append(block)
            else:
                turns.append({"role": "user", "content": [block]})
            continue
        if message.role == "assistant" and message.tool_calls:
            blocks: list[dict[str, Any]] = []
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in message.tool_calls
            ]
            turns.append({"role": "assistant", "content": blocks})
            continue
        turns.append({"role": message.role, "content": message.content})
    return turns


def anthropic_body(request: LlmRequest, model: str, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": _turns(request.messages),
        "temperature": request.temperature,
    }
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    if system:
        body["system"] = system
    tools = [
        {"name": t.name, "description": t.description, "input_schema": t.parameters}
        for t in request.tools
    ]
    if request.response_schema is not None:
        tools.append(
            {
                "name": request.schema_name,
                "description": "Give your answer by calling this tool with it as the input.",
                "input_schema": request.response_schema,
            }
        )
        if not request.tools:
            body["tool_choice"] = {"type": "tool", "name": request.schema_name}
    if tools:
        body["tools"] = tools
    if stream:
        body["stream"] = True
    return body


class AnthropicMessages:
    def __init__(self, endpoint: LlmEndpoint, http: httpx.AsyncClient, *, timeout_s: float):
        self.endpoint = endpoint
        self._http = http
        self._timeout_s = timeout_s
        self._url = f"{endpoint.base_url}/v1/messages"
        self._headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
        if endpoint.api_key:
            self._headers["x-api-key"] = endpoint.api_key

    async def aclose(self) -> None:
        await self._http.aclose()

    async def attempt(self, request: LlmRequest, *, on_delta: DeltaSink | None) -> LlmReply:
        body = anthropic_body(request, self.endpoint.model, stream=on_delta is not None)
        if on_delta is not None:
            return await self._streamed(request, body, on_delta)
        answer = await post_json(
            self._http,
            self._url,
            headers=self._headers,
            body=body,
            timeout_s=self._timeout_s,
            secrets=(self.endpoint.api_key,),
        )
        blocks = answer.get("content")
        require(isinstance(blocks, list), "no content blocks")
        assert isinstance(blocks, list)
        usage = answer.get("usage") or {}
        return self._reply(
            request,
            blocks,
            model=str(answer.get("model") or self.endpoint.model),
            tokens=(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)),
            stop_reason=str(answer.get("stop_reason") or ""),
        )

    def _reply(
        self,
        request: LlmRequest,
        blocks: list[Any],
        *,
        model: str,
        tokens: tuple[int, int],
        stop_reason: str,
    ) -> LlmReply:
        text: list[str] = []
        calls: list[ToolCall] = []
        structured: str | None = None
        for block in blocks:
            require(isinstance(block, dict), "a content block is not an object")
            if block.get("type") == "text":
                text.append(str(block.get("text") or ""))
            elif block.get("type") == "tool_use":
                name = str(block.get("name") or "")
                require(bool(name), "a tool_use block has no name")
                arguments = parse_arguments(block.get("input"), name)
                if request.response_schema is not None and name == request.schema_name:
                    structured = json.dumps(arguments)
                else:
                    calls.append(
                        ToolCall(id=str(block.get("id") or ""), name=name, arguments=arguments)
                    )
        content = structured if structured is not None else "".join(text)
        require_json_content(request, content)
        return LlmReply(
            provider=self.endpoint.provider,
            model=model,
            content=content,
            tool_calls=tuple(calls),
            tokens_in=tokens[0],
            tokens_out=tokens[1],
            finish_reason=stop_reason,
        )

    async def _streamed(
        self, request: LlmRequest, body: dict[str, Any], on_delta: DeltaSink
    ) -> LlmReply:
        blocks: dict[int, dict[str, Any]] = {}
        partial_json: dict[int, list[str]] = {}
        model, stop_reason, tokens_in, tokens_out = self.endpoint.model, "", 0, 0
        finished = False
        events = post_sse(
            self._http,
            self._url,
            headers=self._headers,
            body=body,
            timeout_s=self._timeout_s,
            secrets=(self.endpoint.api_key,),
        )
        async for event in events:
            kind = event.get("type") if event else None
            if event is None or kind == "message_stop":
                finished = True
                break
            if kind == "error":
                detail = event.get("error") or {}
                reason = f"stream error: {detail.get('type', 'unknown')}"
                raise AttemptError(reason, transient=detail.get("type") == "overloaded_error")
            if kind == "message_start":
                message = event.get("message") or {}
                model = str(message.get("model") or model)
                tokens_in = int((message.get("usage") or {}).get("input_tokens") or 0)
            elif kind == "content_block_start":
                blocks[int(event.get("index", 0))] = dict(event.get("content_block") or {})
            elif kind == "content_block_delta":
                index = int(event.get("index", 0))
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta":
                    piece = str(delta.get("text") or "")
                    block = blocks.setdefault(index, {"type": "text", "text": ""})
                    block["text"] = str(block.get("text") or "") + piece
                    if piece:
                        await on_delta(piece)
                elif delta.get("type") == "input_json_delta":
                    partial_json.setdefault(index, []).append(str(delta.get("partial_json") or ""))
            elif kind == "message_delta":
                stop_reason = str((event.get("delta") or {}).get("stop_reason") or stop_reason)
                tokens_out = int((event.get("usage") or {}).get("output_tokens") or tokens_out)
        if not finished:
            raise AttemptError("the stream ended before the answer was complete", transient=True)
        for index, pieces in partial_json.items():
            # Parsed (and checked) in _reply, like a non-streamed tool_use input.
            blocks.setdefault(index, {"type": "tool_use"})["input"] = "".join(pieces)
        return self._reply(
            request,
            [blocks[i] for i in sorted(blocks)],
            model=model,
            tokens=(tokens_in, tokens_out),
            stop_reason=stop_reason,
        )
