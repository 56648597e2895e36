"""The event envelope and the value objects that events carry.

Every event is a frozen msgspec struct tagged by its ``type``. Evolve an event only by adding
fields with defaults; never rename or reuse a tag.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from events.ids import derive_id

__all__ = [
    "Budget",
    "Check",
    "Event",
    "Expect",
    "ForkPoint",
    "MemoryItem",
    "OutputRef",
    "Stamp",
    "TaskOutcome",
    "TaskSpec",
    "event_type",
]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """The envelope every event shares. ``type`` is the struct's tag."""

    event_id: str
    schema_version: int = 1
    goal_id: str
    occurred_at: datetime
    causation_id: str | None
    correlation_id: str
    producer: str


def event_type(event: Event) -> str:
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


# Value objects inside events read tolerantly: a field a newer producer added is ignored, so
# an older consumer never dead-letters the event. Intake commands stay strict (commands.py).


class Expect(msgspec.Struct, frozen=True, kw_only=True):
    """What the evaluator checks in a goal's result."""

    contains: str | tuple[str, ...] | None = None
    equals: str | None = None
    matches: str | None = None  # a regular expression searched in the result


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    """A cap on a goal's LLM spending; ``None`` means no cap on that measure."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None


class ForkPoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where a forked goal starts from: ``goal_id``'s state as of stream sequence ``at_seq``."""

    goal_id: str
    at_seq: int


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One task of a plan. ``args`` may refer to earlier outputs as ``{{steps.<id>.output}}``.

    A task whose ``tool`` is ``react`` is open-ended: the executor runs a think -> call a tool
    -> observe loop, and may call only the tools in ``allowed_tools``, fixed when the plan is
    made (tool output can never widen them).
    """

    task_id: str
    description: str
    tool: str
    args: dict[str, Any] = {}
    depends_on: tuple[str, ...] = ()
    timeout_s: float = 30.0
    max_attempts: int = 3
    allowed_tools: tuple[str, ...] = ()


class MemoryItem(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    text: str
    score: float
    goal_id: str  # provenance: the goal the item was learned in
    source_event_id: str  # provenance: the event it was learned from
    kind: str = "observation"
    recorded_at: datetime | None = None


class OutputRef(msgspec.Struct, frozen=True, kw_only=True):
    """A large output stored once in object store ``bucket`` under ``name`` (events/outputs.py).

    ``size`` is the UTF-8 text's length in bytes, ``sha256`` its hex digest (readers check it),
    ``preview`` its first characters. An event field beside it (``output``, ``result``) then
    holds only the preview.
    """

    bucket: str
    name: str
    size: int
    sha256: str
    preview: str = ""


class TaskOutcome(msgspec.Struct, frozen=True, kw_only=True):
    task_id: str
    tool: str
    status: Literal["completed", "failed", "skipped"]
    output: str = ""
    error: str = ""
    output_ref: OutputRef | None = None


class Check(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    passed: bool
    detail: str = ""


class Stamp(msgspec.Struct, frozen=True):
    """Fills in the envelope of the events one input causes.

    ``envelope(tag, *key)`` derives the event id from the producer, the goal, the event type
    and the decision's logical key, so the same decision always gets the same id.

    A msgspec struct (never encoded) rather than a dataclass: every decision makes one, and a
    frozen dataclass's ``__init__`` costs ten times as much.
    """

    producer: str
    goal_id: str
    occurred_at: datetime
    causation_id: str | None
    correlation_id: str

    @classmethod
    def caused_by(cls, cause: Event, *, producer: str, now: datetime) -> Stamp:
        return cls(
            producer=producer,
            goal_id=cause.goal_id,
            occurred_at=now,
            causation_id=cause.event_id,
            correlation_id=cause.correlation_id,
        )

    @classmethod
    def at_intake(cls, goal_id: str, *, producer: str, now: datetime) -> Stamp:
        """For what an intake command causes: it has no causing event."""
        return cls(
            producer=producer,
            goal_id=goal_id,
            occurred_at=now,
            causation_id=None,
            correlation_id=goal_id,
        )

    def envelope(self, tag: str, *key: object) -> dict[str, Any]:
        service = self.producer.split("@", 1)[0]
        return {
            "event_id": derive_id(service, self.goal_id, tag, *key),
            "goal_id": self.goal_id,
            "occurred_at": self.occurred_at,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
            "producer": self.producer,
        }
