"""submit_goal's parameters as the intake command's own JSON Schema (``agora schema``).

The tool lists each parameter with the schema agora's intake validates against (patterns,
limits, the fields of a step and of ``expect``), derived from ``events.commands.GoalCommand``,
so the two cannot drift apart. A tool's input schema is one self-contained document: the
intake's ``$defs`` references are inlined.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import msgspec

from events.commands import GoalCommand

__all__ = ["intake_property", "listed_as_intake"]

_REF_PREFIX = "#/$defs/"


@functools.cache
def _goal_command() -> tuple[dict[str, Any], dict[str, Any]]:
    [ref], defs = msgspec.json.schema_components([GoalCommand], ref_template=_REF_PREFIX + "{name}")
    return defs[ref["$ref"].removeprefix(_REF_PREFIX)], defs


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            return _inline(defs[ref.removeprefix(_REF_PREFIX)], defs)
        return {key: _inline(value, defs) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    return schema


def intake_property(name: str) -> dict[str, Any]:
    """The JSON Schema of the intake command's field ``name``, self-contained."""
    command, defs = _goal_command()
    inlined: dict[str, Any] = _inline(command["properties"][name], defs)
    return inlined


def listed_as_intake(name: str) -> Callable[[dict[str, Any]], None]:
    """A pydantic ``json_schema_extra`` that lists a parameter as intake field ``name``,
    keeping the parameter's own title and description."""

    def replace(schema: dict[str, Any]) -> None:
        kept = {key: schema[key] for key in ("title", "description") if key in schema}
        schema.clear()
        schema.update(intake_property(name), **kept)

    return replace
