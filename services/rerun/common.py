"""What every service's re-run shares: options, the report, and comparing decisions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from events.model import Event, event_type
from events.tools import BUILTIN_TOOLS, ToolSpec
from services.executor.decide import Backoff
from services.llm.port import LlmPort
from services.llm.templates import PromptTemplate
from services.planner.llm_plan import LlmPlanning

__all__ = ["Difference", "RerunOptions", "RerunReport", "compare", "service_of", "short"]

DifferenceKind = Literal[
    "missing", "new", "changed", "llm_request_new", "llm_request_unasked", "tool_call_new"
]
# When and on which delivery a decision was taken, when and how long a tool ran: not what.
# A timer's due time follows from when it started (its ``seconds`` are compared), and an
# approval request's deadline from when it was asked (the policy's ``deadline_s``).
_NOT_COMPARED = frozenset(
    {
        "occurred_at",
        "producer",
        "causation_id",
        "duration_ms",
        "attempt_duration_ms",
        "called_at",
        "latency_ms",
        "due_at",
        "late_ms",
        "deadline",
    }
)
_DETAIL_CHARS = 160


@dataclass(frozen=True, slots=True)
class Difference:
    kind: DifferenceKind
    event_id: str
    type: str
    detail: str


@dataclass(frozen=True, slots=True)
class RerunReport:
    goal_id: str
    service: str
    inputs: int  # inputs fed through the current code
    recorded: int  # recorded decisions of the service
    rerun_decisions: int  # decisions the current code took
    llm_answers_reused: int  # model requests answered from the record
    llm_calls: int  # live model calls (only with a live port)
    differences: tuple[Difference, ...]
    stopped_early: bool = False  # a request had no recorded answer: later inputs not driven

    @property
    def identical(self) -> bool:
        return not self.differences

    def as_json(self) -> dict[str, Any]:
        return {
            "goal_id": self.goal_id,
            "service": self.service,
            "identical": self.identical,
            "inputs": self.inputs,
            "recorded": self.recorded,
            "rerun_decisions": self.rerun_decisions,
            "llm_answers_reused": self.llm_answers_reused,
            "llm_calls": self.llm_calls,
            "stopped_early": self.stopped_early,
            "differences": [
                {"kind": d.kind, "event_id": d.event_id, "type": d.type, "detail": d.detail}
                for d in self.differences
            ],
        }


@dataclass(frozen=True, slots=True)
class RerunOptions:
    """The current code's configuration, and a port for ``--live-llm`` (None: record only).

    ``llm_strategies``: the LLM strategies are on (the planner's are configured by
    ``planning``, the evaluator's judge by ``judge_prompt``).
    """

    planning: LlmPlanning | None
    port: LlmPort | None = None
    producer: str = "planner@rerun"
    llm_strategies: bool = False
    judge_prompt: PromptTemplate | None = None
    react_prompt: PromptTemplate | None = None
    react_tools: Mapping[str, ToolSpec] = field(default_factory=lambda: BUILTIN_TOOLS)
    # What the planner validates and plans with: the built-in tools and the MCP tools listed
    # when the goal was submitted (``events.tool_catalogue.with_listed``).
    tools: Mapping[str, ToolSpec] = field(default_factory=lambda: BUILTIN_TOOLS)
    react_max_steps: int = 8
    # The executor's backoff between attempts (a long one waits on a durable timer).
    backoff: Backoff = field(default_factory=Backoff)


def _content(event: Event) -> dict[str, Any]:
    raw = msgspec.to_builtins(event)
    assert isinstance(raw, dict)
    return {key: value for key, value in raw.items() if key not in _NOT_COMPARED}


def short(value: object) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def compare(recorded: Sequence[Event], rerun_decisions: Sequence[Event]) -> list[Difference]:
    """Where ``rerun_decisions`` decisions differ from ``recorded`` ones, in recorded order."""
    new_by_id = {event.event_id: event for event in rerun_decisions}
    old_ids = {event.event_id for event in recorded}
    differences: list[Difference] = []
    for old in recorded:
        new = new_by_id.get(old.event_id)
        if new is None:
            differences.append(
                Difference("missing", old.event_id, event_type(old), "no longer decided")
            )
            continue
        before, after = _content(old), _content(new)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if changed:
            detail = "; ".join(
                f"{k}: {short(before.get(k))} -> {short(after.get(k))}" for k in changed
            )
            differences.append(Difference("changed", old.event_id, event_type(old), detail))
    differences += [
        Difference("new", event.event_id, event_type(event), "decided only by the current code")
        for event in rerun_decisions
        if event.event_id not in old_ids
    ]
    return differences


def service_of(event: Event) -> str:
    return event.producer.split("@", 1)[0]
