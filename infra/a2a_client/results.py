"""From A2A to agora and back, without I/O: an agent's card as its one tool's spec, a call's
arguments as a message, the agent's answer as a tool result or a ``ToolError``.

Agent ``research`` is the tool ``a2a.research``: its arguments are the message (``text``,
and optionally a JSON object ``data``), its output the task's artifacts (or the agent's
reply message). A task the agent failed, rejected, cancelled or paused for input is a
permanent ``ToolError`` with the agent's own words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from a2a.types import AgentCard, Message, Part, Role, StreamResponse, Task, TaskState
from a2a.utils.constants import TransportProtocol
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict

from events.errors import ToolError
from events.tools import external_tool
from infra.a2a_client.config import A2AAgent
from infra.mcp.listing import Listing

__all__ = [
    "MESSAGE_SCHEMA",
    "Answer",
    "agent_listing",
    "answer_of",
    "folded",
    "message_of",
    "protocol_version_of",
]

# What a delegation takes: the message to the agent.
MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "description": "the message to the agent"},
        "data": {
            "type": "object",
            "description": "a JSON object sent with the text, as a data part",
        },
    },
    "required": ["text"],
    "additionalProperties": False,
}
# A card says what it likes; a tool description a model reads stays short.
_MAX_DESCRIPTION = 2000
_WAITING = frozenset({TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING})
_ENDED_BADLY = {
    TaskState.TASK_STATE_FAILED: "failed",
    TaskState.TASK_STATE_REJECTED: "rejected",
    TaskState.TASK_STATE_CANCELED: "cancelled",
}
_NEEDS_SOMEONE = {
    TaskState.TASK_STATE_INPUT_REQUIRED: "asked for input",
    TaskState.TASK_STATE_AUTH_REQUIRED: "asked for authorization",
}


def agent_listing(agent: A2AAgent, card: AgentCard) -> Listing:
    """The agent's one tool, described by its card (its name, description and skills)."""
    skills = "; ".join(
        f"{skill.name}: {skill.description}".strip(": ") for skill in card.skills if skill.name
    )
    about = f"Delegate a task to the A2A agent {card.name or agent.name}"
    if card.description:
        about += f": {card.description.strip()}"
    if skills:
        about += f" Skills: {skills}"
    if len(about) > _MAX_DESCRIPTION:
        about = about[: _MAX_DESCRIPTION - 1] + "…"
    spec = external_tool(
        agent.tool,
        about,
        MESSAGE_SCHEMA,
        origin=agent.origin,
        trusted=agent.trusted,
        default_timeout_s=agent.timeout_s,
    )
    return Listing({agent.tool: spec})


def protocol_version_of(card: AgentCard) -> str | None:
    """The protocol version of the card's JSON-RPC interface (the one agora speaks)."""
    for interface in card.supported_interfaces:
        if interface.protocol_binding == TransportProtocol.JSONRPC.value:
            return interface.protocol_version or None
    return None


def message_of(arguments: dict[str, Any], *, message_id: str) -> Message:
    """The message a delegation sends (arguments checked against ``MESSAGE_SCHEMA``)."""
    parts = [Part(text=str(arguments["text"]))]
    if "data" in arguments:
        parts.append(Part(data=ParseDict(arguments["data"], struct_pb2.Value())))
    return Message(message_id=message_id, role=Role.ROLE_USER, parts=parts)


def folded(current: Task | None, response: StreamResponse) -> Task | Message:
    """The agent's answer so far, after one more response of its stream: a task, its status
    and artifact updates folded in, or a reply message."""
    kind = response.WhichOneof("payload")
    if kind == "message":
        return response.message
    if kind == "task":
        return response.task
    if current is None or kind is None:
        raise ToolError(
            f"the agent's stream sent {kind or 'an empty response'} before the task it is about"
        )
    task = Task()
    task.CopyFrom(current)
    if kind == "status_update":
        task.status.CopyFrom(response.status_update.status)
        return task
    update = response.artifact_update
    for artifact in task.artifacts:
        if artifact.artifact_id == update.artifact.artifact_id:
            if not update.append:
                del artifact.parts[:]
            artifact.parts.extend(update.artifact.parts)
            return task
    task.artifacts.append(update.artifact)
    return task


@dataclass(frozen=True, slots=True)
class Answer:
    """What the agent answered: the tool's output, or None while its task still runs."""

    text: str
    structured: dict[str, Any]


def answer_of(agent: str, answer: Task | Message) -> Answer | None:
    """The tool's result of the agent's ``answer``; None while its task is still running; a
    ``ToolError`` when the task ended otherwise than completed, or the answer is no answer."""
    if isinstance(answer, Message):
        text = _parts_text(answer.parts)
        return Answer(text, {"context_id": answer.context_id, "message": text})
    state = answer.status.state
    said = _parts_text(answer.status.message.parts)
    if state in _WAITING:
        return None
    name = f"A2A agent {agent}"
    if state in _ENDED_BADLY:
        raise ToolError(
            f"{name} {_ENDED_BADLY[state]} task {answer.id}: {said or '(no reason given)'}"
        )
    if state in _NEEDS_SOMEONE:
        raise ToolError(
            f"{name} {_NEEDS_SOMEONE[state]} on task {answer.id} ({said or 'no message'}): "
            "agora's delegations take no follow-up; send everything the agent needs in the "
            "first message"
        )
    if state != TaskState.TASK_STATE_COMPLETED:
        raise ToolError(f"{name} answered task {answer.id!r} without a state agora knows")
    artifacts = [
        {"artifact_id": a.artifact_id, "name": a.name, "text": _parts_text(a.parts)}
        for a in answer.artifacts
    ]
    text = "\n\n".join(a["text"] for a in artifacts if a["text"]) or said
    structured = {
        "task_id": answer.id,
        "context_id": answer.context_id,
        "state": "completed",
        "status_message": said,
        "artifacts": artifacts,
    }
    return Answer(text, structured)


def _parts_text(parts: Any) -> str:
    """Text parts as they are, data parts as JSON, files named: one a line."""
    lines: list[str] = []
    for part in parts:
        match part.WhichOneof("content"):
            case "text":
                lines.append(part.text)
            case "data":
                data = MessageToDict(part.data)
                lines.append(json.dumps(data, ensure_ascii=False, sort_keys=True))
            case "url":
                lines.append(f"[file {part.url}]")
            case "raw":
                lines.append(f"[file {part.media_type or 'bytes'}, {len(part.raw)} bytes]")
            case _:
                continue
    return "\n".join(lines)
