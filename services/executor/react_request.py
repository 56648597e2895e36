"""The think request of a ReAct task: the prompt, the instruction, and every earlier turn with
its observations, each as JSON-quoted data in a ``role="tool"`` message. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    TaskScheduled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
)
from events.tools import REACT_TOOL, ToolSpec
from services.executor.react_record import Observation, Turn
from services.llm.messages import ChatMessage, LlmRequest, ToolCall, ToolDefinition
from services.llm.templates import PromptTemplate

__all__ = ["ReactConfig", "build_request", "granted_tools", "observation_message"]


@dataclass(frozen=True, slots=True)
class ReactConfig:
    """What ReAct decisions need besides the record: the registry's tool specs (names,
    descriptions, argument schemas), the prompt template, the step limit, and the timers'
    threshold: a call's wait longer than it is a durable timer (None: every call runs in
    process)."""

    tools: Mapping[str, ToolSpec]
    prompt: PromptTemplate
    max_steps: int = 8
    timer_threshold_s: float | None = None


def granted_tools(task: TaskScheduled, config: ReactConfig) -> tuple[str, ...]:
    """The task's ``allowed_tools`` that exist, in plan order; never ``react`` itself."""
    granted: list[str] = []
    for name in task.allowed_tools:
        if name in config.tools and name != REACT_TOOL and name not in granted:
            granted.append(name)
    return tuple(granted)


def build_request(
    task: TaskScheduled,
    instruction: str,
    turns: tuple[Turn, ...],
    config: ReactConfig,
    *,
    max_tokens: int | None = None,
    approved: Mapping[tuple[int, int], ApprovalGranted] | None = None,
) -> LlmRequest:
    """The think request for the step after ``turns``: system prompt, the instruction, then
    every earlier reply and its observations as role=tool messages. ``approved``: the grants
    of calls that waited for approval, by (step, call); an edited one shows what ran."""
    granted = granted_tools(task, config)
    system = config.prompt.render(
        tools=", ".join(granted) or "none (answer directly)", max_steps=str(config.max_steps)
    )
    # The iteration makes every attempt at a task its own request: a revised plan that runs
    # the same task again gets a fresh answer, recorded under its own hash.
    heading = f"Task {task.task_id} (iteration {task.iteration}): {task.description}"
    messages = [
        ChatMessage(role="system", content=system),
        ChatMessage(role="user", content=f"{heading}\n\n{instruction}"),
    ]
    for turn in turns:
        calls = tuple(
            _with_id(call, turn.step, n) for n, call in enumerate(turn.reply.tool_calls, 1)
        )
        messages.append(ChatMessage(role="assistant", content=turn.reply.content, tool_calls=calls))
        for number, (call, observation) in enumerate(
            zip(calls, turn.observations, strict=False), 1
        ):
            grant = (approved or {}).get((turn.step, number))
            edit = grant.args if grant is not None and grant.edited else None
            messages.append(observation_message(call, observation, edited_args=edit))
    return LlmRequest(
        purpose="react",
        messages=tuple(messages),
        tools=tuple(_definition(config.tools[name]) for name in granted),
        max_tokens=max_tokens,
    )


def observation_message(
    call: ToolCall, observation: Observation, *, edited_args: dict[str, Any] | None = None
) -> ChatMessage:
    """The result of ``call`` as the model sees it: JSON-quoted data in a role=tool message,
    so nothing inside it can pose as a message, a role or a tool call. ``edited_args``: the
    arguments a person approved the call with instead of the model's (what really ran)."""
    payload: dict[str, Any]
    match observation:
        case ToolReturned(output=output):
            payload = {"tool": call.name, "status": "returned", "output": output}
        case ToolFailed(error=error):
            payload = {"tool": call.name, "status": "failed", "error": error}
        case ToolRefused(reason=reason):
            payload = {"tool": call.name, "status": "refused", "error": reason}
        case ApprovalDenied(reason=reason):
            payload = {"tool": call.name, "status": "denied", "error": f"approval denied: {reason}"}
    if edited_args is not None:
        payload["approved_args"] = edited_args
    return ChatMessage(
        role="tool", tool_call_id=call.id, content=msgspec.json.encode(payload).decode()
    )


def _with_id(call: ToolCall, step: int, number: int) -> ToolCall:
    # Some servers leave tool call ids empty; a tool message must name the call it answers.
    return (
        call
        if call.id
        else ToolCall(id=f"s{step}c{number}", name=call.name, arguments=call.arguments)
    )


def _definition(spec: ToolSpec) -> ToolDefinition:
    return ToolDefinition(
        name=spec.name, description=spec.description, parameters=spec.json_schema()
    )
