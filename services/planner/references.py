"""References from a task's arguments to the outputs of earlier tasks.

Syntax: anywhere inside a string argument, ``{{steps.<id>.output}}`` stands for the output of
the task ``<id>`` in the same iteration (whitespace inside the braces is tolerated, so
``{{ steps.s1.output }}`` works too). References are found recursively in lists and dicts.
A task may only refer to tasks it depends on, directly or transitively, so that the output
exists by the time the task is scheduled; the planner checks this at intake and substitutes
the outputs when it schedules the task (``task_scheduled.args`` are always resolved).

Any other ``{{...}}`` text is left alone: it is ordinary text to the tools.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from events.linear_regex import SPACE, compile_linear

__all__ = [
    "REFERENCE_MARKER",
    "contains_reference_marker",
    "referenced_step_ids",
    "resolve_references",
    "step_reference",
]

# The planner validates arguments with the tool's schema only when no string contains this
# marker: a value like "{{steps.s1.output}}" is not yet the number or URL it will become.
REFERENCE_MARKER = "{{"

_REFERENCE = compile_linear(rf"\{{\{{{SPACE}*steps\.([A-Za-z0-9_-]+)\.output{SPACE}*\}}\}}")


def step_reference(step_id: str) -> str:
    """The canonical way to refer to ``step_id``'s output inside an argument."""
    return f"{{{{steps.{step_id}.output}}}}"


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def contains_reference_marker(args: Mapping[str, Any]) -> bool:
    return any(_has_marker(value) for value in args.values())


def _has_marker(value: object) -> bool:
    # Checked for every step of every goal at intake: plain recursion, no generator chain.
    if isinstance(value, str):
        return REFERENCE_MARKER in value
    if isinstance(value, Mapping):
        return any(_has_marker(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_marker(item) for item in value)
    return False


def referenced_step_ids(args: Mapping[str, Any]) -> tuple[str, ...]:
    """Every step id referred to in ``args``, in order of first appearance, without repeats."""
    found: dict[str, None] = {}
    for text in _strings(args):
        if REFERENCE_MARKER not in text:
            continue  # the common case, without running the pattern
        for match in _REFERENCE.finditer(text):
            found.setdefault(match.group(1), None)
    return tuple(found)


def _resolve(value: Any, outputs: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if REFERENCE_MARKER not in value:
            return value  # every reference starts with the marker: nothing to substitute
        # A reference to a task without an output stays visible instead of silently vanishing.
        return _REFERENCE.sub(lambda m: outputs.get(m.group(1), m.group(0)), value)
    if isinstance(value, Mapping):
        return {key: _resolve(item, outputs) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_resolve(item, outputs) for item in value]
    return value


def resolve_references(args: Mapping[str, Any], outputs: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``args`` with every ``{{steps.<id>.output}}`` replaced by ``outputs[id]``."""
    return {key: _resolve(value, outputs) for key, value in args.items()}
