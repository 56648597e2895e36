"""JSON Schema of intake commands, tool arguments and every event type (``agora schema``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from events.approval_commands import ApprovalAnswer
from events.catalog import EVENT_TYPES
from events.commands import GoalCommand
from events.control_commands import CONTROL_SUBJECTS
from events.memory_commands import INTAKE_MEMORY_FORGET, ForgetCommand
from events.message_commands import MessageCommand
from events.subjects import INTAKE_APPROVAL, INTAKE_MESSAGE
from events.tools import BUILTIN_TOOLS, ToolSpec

__all__ = ["json_schemas"]


def json_schemas(tools: Mapping[str, ToolSpec] = BUILTIN_TOOLS) -> dict[str, Any]:
    """``tools``: the tools to describe (the built-in ones, or those and MCP servers')."""
    controls = {subject: schema for subject, (_, schema) in CONTROL_SUBJECTS.items()}
    intake_schema, intake_defs = msgspec.json.schema_components(
        [GoalCommand, ForgetCommand, ApprovalAnswer, MessageCommand, *controls.values()]
    )
    event_schemas, event_defs = msgspec.json.schema_components(list(EVENT_TYPES.values()))
    return {
        "intake": {
            "agora.intake.goal": intake_schema[0],
            INTAKE_MEMORY_FORGET: intake_schema[1],
            INTAKE_APPROVAL: intake_schema[2],
            INTAKE_MESSAGE: intake_schema[3],
            **dict(zip(controls, intake_schema[4:], strict=True)),
            "$defs": intake_defs,
        },
        "events": {
            "types": dict(zip(EVENT_TYPES, event_schemas, strict=True)),
            "$defs": event_defs,
        },
        "tools": {
            name: {
                "description": spec.description,
                "origin": spec.origin,
                "trusted": spec.trusted,
                "args": spec.json_schema(),
            }
            for name, spec in tools.items()
        },
    }
