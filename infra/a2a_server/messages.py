"""An A2A message as agora's intake command. Pure: no I/O.

The message's text parts, joined, are the goal's text. A data part may carry the intake JSON
(``steps``, ``expect``, ``max_iterations``, ``metadata``, ``allowed_tools``, budgets, and
``text`` when the message has no text part); the planner validates it like any command and
rejects a bad one with its reason. The goal and command ids are derived from the message id,
so the same message sent again names the same goal and starts nothing new, however late it
comes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from a2a.types import Message
from google.protobuf.json_format import MessageToDict

from events.errors import AgoraError

__all__ = [
    "A2A_METADATA",
    "MessageNotUnderstoodError",
    "TaskIds",
    "command_from_message",
    "task_ids",
]

# The key under which a goal's metadata keeps what A2A said about it.
A2A_METADATA = "a2a"
# Chosen by agora, never by the message: the task id is the goal id, made from the message id.
_SERVER_CHOSEN = ("goal_id", "command_id", "forked_from")


class MessageNotUnderstoodError(AgoraError):
    """A message that cannot become a goal; nothing was submitted."""


@dataclass(frozen=True, slots=True)
class TaskIds:
    goal_id: str  # the A2A task id
    command_id: str


def task_ids(message_id: str) -> TaskIds:
    """The goal a message starts: the same message id, the same goal (one subject token)."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=12).hexdigest()
    return TaskIds(goal_id=f"a2a-{digest}", command_id=f"a2a-{digest}")


def command_from_message(message: Message, *, context_id: str) -> dict[str, Any]:
    """The intake command of ``message``, its ids derived from its message id."""
    if not message.message_id:
        raise MessageNotUnderstoodError("the message has no messageId")
    texts = [part.text for part in message.parts if part.WhichOneof("content") == "text"]
    data = [part.data for part in message.parts if part.WhichOneof("content") == "data"]
    if len(data) > 1:
        raise MessageNotUnderstoodError(
            f"the message has {len(data)} data parts: send the intake JSON in one"
        )
    command: dict[str, Any] = {}
    if data:
        given = MessageToDict(data[0])
        if not isinstance(given, dict):
            raise MessageNotUnderstoodError(
                "the data part must be a JSON object: agora's intake command (steps, expect, "
                "…; `agora schema` prints its JSON Schema)"
            )
        refused = sorted(set(given) & set(_SERVER_CHOSEN))
        if refused:
            raise MessageNotUnderstoodError(
                f"the data part names {', '.join(refused)}: agora chooses them (the task id "
                "is derived from the message id)"
            )
        command.update(given)
    text = "\n".join(t for t in texts if t.strip())
    if text:
        command["text"] = text
    if not str(command.get("text", "")).strip():
        raise MessageNotUnderstoodError(
            "the message has no text: send a text part (the goal), or a data part with `text`"
        )
    ids = task_ids(message.message_id)
    metadata = command.get("metadata", {})
    if not isinstance(metadata, dict):
        raise MessageNotUnderstoodError("the data part's metadata must be a JSON object")
    command["metadata"] = {
        **metadata,
        A2A_METADATA: {"message_id": message.message_id, "context_id": context_id},
    }
    command.update(goal_id=ids.goal_id, command_id=ids.command_id)
    return command
