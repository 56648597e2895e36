"""An AG-UI ``RunAgentInput`` as agora's intake command. Pure: no I/O.

The goal's text is the last user message's text. ``forwardedProps.agora`` may carry the rest
of an intake command (``steps``, ``expect``, ``max_iterations``, ``metadata``,
``allowed_tools``, budgets); the planner validates it like any command and rejects a bad one
with its reason. The goal and command ids are derived from the thread and run ids, so the same
run sent again names the same goal and starts nothing new.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ag_ui.core import RunAgentInput, TextPart, UserMessage

from events.errors import AgoraError

__all__ = [
    "AGUI_METADATA",
    "MAX_ID_CHARS",
    "InputNotUnderstoodError",
    "command_from_input",
    "goal_id_of_run",
]

# The key under which a goal's metadata keeps the AG-UI thread and run it came from.
AGUI_METADATA = "agui"
# Where ``forwardedProps`` carries agora's intake fields.
FORWARDED_KEY = "agora"
MAX_ID_CHARS = 256
# Chosen by agora, never by the input: the goal id is made from the thread and run ids.
_SERVER_CHOSEN = ("goal_id", "command_id", "forked_from")


class InputNotUnderstoodError(AgoraError):
    """A ``RunAgentInput`` that cannot become a goal; nothing was submitted."""


def goal_id_of_run(thread_id: str, run_id: str) -> str:
    """The goal a run starts: the same thread and run, the same goal (one subject token)."""
    digest = hashlib.blake2b(f"{thread_id}\0{run_id}".encode(), digest_size=12).hexdigest()
    return f"agui-{digest}"


def _user_text(run: RunAgentInput) -> str:
    for message in reversed(run.messages):
        if not isinstance(message, UserMessage):
            continue
        content = message.content
        if isinstance(content, str):
            text = content
        else:
            text = "\n".join(part.text for part in content if isinstance(part, TextPart))
        if text.strip():
            return text
    raise InputNotUnderstoodError(
        "the run has no user message with text: the last user message's text is the goal"
    )


def _forwarded(run: RunAgentInput) -> dict[str, Any]:
    props = run.forwarded_props
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise InputNotUnderstoodError(
            "forwardedProps must be a JSON object (agora reads its `agora` key)"
        )
    given = props.get(FORWARDED_KEY)
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise InputNotUnderstoodError(
            "forwardedProps.agora must be a JSON object: agora's intake command (steps, "
            "expect, …; `agora schema` prints its JSON Schema)"
        )
    refused = sorted(set(given) & set(_SERVER_CHOSEN))
    if refused:
        raise InputNotUnderstoodError(
            f"forwardedProps.agora names {', '.join(refused)}: agora chooses them (the goal "
            "id is derived from the thread and run ids)"
        )
    return dict(given)


def command_from_input(run: RunAgentInput) -> dict[str, Any]:
    """The intake command of ``run``, its ids derived from the thread and run ids."""
    for name, value in (("threadId", run.thread_id), ("runId", run.run_id)):
        if not value.strip() or len(value) > MAX_ID_CHARS:
            raise InputNotUnderstoodError(
                f"{name} must be 1 to {MAX_ID_CHARS} characters (it has {len(value)})"
            )
    command = _forwarded(run)
    command["text"] = _user_text(run)
    metadata = command.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InputNotUnderstoodError("forwardedProps.agora.metadata must be a JSON object")
    command["metadata"] = {
        **metadata,
        AGUI_METADATA: {"thread_id": run.thread_id, "run_id": run.run_id},
    }
    goal_id = goal_id_of_run(run.thread_id, run.run_id)
    command.update(goal_id=goal_id, command_id=goal_id)
    return command
