"""OpenAI-compatible Chat Completions (OpenAI, Ollama, vLLM, llama.cpp, LM Studio, OpenRouter…).

Tools are sent as ``functions``; structured output as ``response_format: json_schema``
(non-strict, so any JSON Schema is accepted; the caller validates). Streaming uses SSE with
``stream_options.include_usage`` so token counts arrive in the last chunk.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from infra.llm.provider import DeltaSink, parse_arguments, require, require_json_content
from infra.llm.transport import AttemptError, post_json, post_sse
from infra.settings import LlmEndpoint
from services.llm.messages import ChatMessage, LlmReply, LlmRequest, ToolCall

__all__ = ["OpenAiChat", "openai_body"]


def _message(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def openai_body(request: LlmRequest, model: str, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in request.messages],
        "temperature": request.temperature,
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in request.tools
        ]
    if request.response_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": request.schema_name, "schema": request.response_schema},
        }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _usage(body: dict[str, Any]) -> tuple[int, int]:
    usage = body.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class OpenAiChat:
    def __init__(self, endpoint: LlmEndpoint, http: httpx.AsyncClient, *, timeout_s: float):
        self.endpoint = endpoint
        self._http = http
        self._timeout_s = timeout_s
        self._url = f"{endpoint.base_url}/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        if endpoint.api_key:
            self._headers["Authorization"] = f"Bearer {endpoint.api_key}"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def attempt(self, request: LlmRequest, *, on_delta: DeltaSink | None) -> LlmReply:
        body = openai_body(request, self.endpoint.model, stream=on_delta is not None)
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
        choices = answer.get("choices")
        require(isinstance(choices, list) and len(choices) > 0, "no choices")
        assert isinstance(choices, list)
        choice = choices[0]
        require(isinstance(choice, dict) and isinstance(choice.get("message"), dict), "no message")
        message = choice["message"]
        calls = []
        for raw in message.get("tool_calls") or []:
            function = raw.get("function") if isinstance(raw, dict) else None
            require(isinstance(function, dict) and bool(function.get("name")), "bad tool call")
            assert isinstance(function, dict)
            name = str(function["name"])
            arguments = parse_arguments(function.get("arguments"), name)
            calls.append(ToolCall(id=str(raw.get("id") or ""), name=name, arguments=arguments))
        content = message.get("content") or ""
        require(isinstance(content, str), "content is not text")
        require_json_content(request, content)
        tokens_in, tokens_out = _usage(answer)
        return LlmReply(
            provider=self.endpoint.provider,
            model=str(answer.get("model") or self.endpoint.model),
            content=content,
            tool_calls=tuple(calls),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            finish_reason=str(choice.get("finish_reason") or ""),
        )

    async def _streamed(
        self, request: LlmRequest, body: dict[str, Any], on_delta: DeltaSink
    ) -> LlmReply:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}  # index -> id, name, arguments (accumulated)
        model, finish, tokens = self.endpoint.model, "", (0, 0)
        events = post_sse(
            self._http,
            self._url,
            headers=self._headers,
            body=body,
            timeout_s=self._timeout_s,
            secrets=(self.endpoint.api_key,),
        )
        async for chunk in events:
            if chunk is None:
                break
            if chunk.get("error"):
                detail = chunk["error"]
                kind = detail.get("type", "unknown") if isinstance(detail, dict) else "unknown"
                raise AttemptError(f"stream error: {kind}", transient=True)
            model = str(chunk.get("model") or model)
            if chunk.get("usage"):
                tokens = _usage(chunk)
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                finish = str(choice.get("finish_reason") or finish)
                piece = delta.get("content")
                if isinstance(piece, str) and piece:
                    text.append(piece)
                    await on_delta(piece)
                for part in delta.get("tool_calls") or []:
                    call = calls.setdefault(int(part.get("index", 0)), {"arguments": ""})
                    call["id"] = str(part.get("id") or call.get("id", ""))
                    function = part.get("function") or {}
                    call["name"] = str(function.get("name") or call.get("name", ""))
                    call["arguments"] += str(function.get("arguments") or "")
        if not finish:
            raise AttemptError("the stream ended before the answer was complete", transient=True)
        content = "".join(text)
        require_json_content(request, content)
        tool_calls = tuple(
            ToolCall(
                id=call.get("id", ""),
                name=call.get("name", ""),
                arguments=parse_arguments(call["arguments"], call.get("name", "")),
            )
            for _, call in sorted(calls.items())
        )
        require(all(call.name for call in tool_calls), "a streamed tool call has no name")
        return LlmReply(
            provider=self.endpoint.provider,
            model=model,
            content=content,
            tool_calls=tool_calls,
            tokens_in=tokens[0],
            tokens_out=tokens[1],
            finish_reason=finish,
        )
