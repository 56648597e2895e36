"""Every event type agora records. Tags are past tense, stable, and never reused."""

from __future__ import annotations

from typing import Any, Literal

from events.model import Check, Event, Expect, MemoryItem, TaskOutcome, TaskSpec

__all__ = [
    "EVENT_TYPES",
    "AnyEvent",
    "ContextProvided",
    "ContextRequested",
    "EvaluationCompleted",
    "EvaluationRequested",
    "GoalAccepted",
    "GoalCompleted",
    "GoalFailed",
    "GoalRejected",
    "LlmRequested",
    "LlmResponded",
    "MemoryCompacted",
    "MemoryForgotten",
    "MemoryStored",
    "PlanCreated",
    "PlanRevised",
    "TaskCompleted",
    "TaskFailed",
    "TaskScheduled",
    "TaskStarted",
    "ToolCalled",
    "ToolFailed",
    "ToolReturned",
]

Verdict = Literal["accept", "revise"]


# -- goal lifecycle (planner) ------------------------------------------------------------


class GoalAccepted(Event, frozen=True, kw_only=True, tag="goal_accepted"):
    command_id: str
    text: str
    steps: tuple[TaskSpec, ...] | None = None
    expect: Expect | None = None
    max_iterations: int = 3
    metadata: dict[str, Any] = {}


class GoalRejected(Event, frozen=True, kw_only=True, tag="goal_rejected"):
    command_id: str
    reason: str
    text: str = ""


class GoalCompleted(Event, frozen=True, kw_only=True, tag="goal_completed"):
    result: str
    iterations: int
    score: float


class GoalFailed(Event, frozen=True, kw_only=True, tag="goal_failed"):
    reason: str
    iterations: int
    score: float | None = None


# -- context (planner asks, memory answers) ----------------------------------------------


class ContextRequested(Event, frozen=True, kw_only=True, tag="context_requested"):
    iteration: int
    query: str
    k: int = 5


class ContextProvided(Event, frozen=True, kw_only=True, tag="context_provided"):
    request_id: str
    iteration: int
    items: tuple[MemoryItem, ...] = ()


# -- plans (planner) ---------------------------------------------------------------------


class PlanCreated(Event, frozen=True, kw_only=True, tag="plan_created"):
    iteration: int
    strategy: str
    tasks: tuple[TaskSpec, ...]


class PlanRevised(Event, frozen=True, kw_only=True, tag="plan_revised"):
    iteration: int
    strategy: str
    tasks: tuple[TaskSpec, ...]
    feedback: str


class TaskScheduled(Event, frozen=True, kw_only=True, tag="task_scheduled"):
    """A task ready to run, its argument references already resolved."""

    iteration: int
    task_id: str
    description: str
    tool: str
    args: dict[str, Any]
    timeout_s: float
    max_attempts: int


class EvaluationRequested(Event, frozen=True, kw_only=True, tag="evaluation_requested"):
    """Everything the evaluator needs to judge one iteration, so its verdict is replayable."""

    iteration: int
    text: str
    expect: Expect | None
    result: str
    tasks: tuple[TaskOutcome, ...]


# -- execution (executor) ----------------------------------------------------------------


class TaskStarted(Event, frozen=True, kw_only=True, tag="task_started"):
    iteration: int
    task_id: str
    tool: str
    attempt: int


class ToolCalled(Event, frozen=True, kw_only=True, tag="tool_called"):
    iteration: int
    task_id: str
    tool: str
    attempt: int
    args: dict[str, Any]


class ToolReturned(Event, frozen=True, kw_only=True, tag="tool_returned"):
    iteration: int
    task_id: str
    tool: str
    attempt: int
    output: str
    duration_ms: float


class ToolFailed(Event, frozen=True, kw_only=True, tag="tool_failed"):
    iteration: int
    task_id: str
    tool: str
    attempt: int
    error: str
    transient: bool
    duration_ms: float


class TaskCompleted(Event, frozen=True, kw_only=True, tag="task_completed"):
    iteration: int
    task_id: str
    tool: str
    output: str
    attempts: int
    duration_ms: float


class TaskFailed(Event, frozen=True, kw_only=True, tag="task_failed"):
    iteration: int
    task_id: str
    tool: str
    error: str
    attempts: int
    duration_ms: float


# -- memory ------------------------------------------------------------------------------


class MemoryStored(Event, frozen=True, kw_only=True, tag="memory_stored"):
    key: str
    text: str
    kind: str = "observation"
    source_event_id: str
    importance: float = 0.5
    # Free-form labels that searches may filter on (e.g. the goal's metadata for a lesson).
    metadata: dict[str, Any] = {}


# -- memory: forgetting and working-memory compaction (memory service) -------------------


class MemoryForgotten(Event, frozen=True, kw_only=True, tag="memory_forgotten"):
    """A forget command, applied. ``key`` empty: everything learned from ``goal_id``.

    ``goal_id`` is the goal the forgotten item came from; ``content_hash`` (when the item was
    known) also forgets every copy of the same normalized text, stored before or after.
    """

    command_id: str
    key: str = ""
    content_hash: str = ""
    reason: str = ""


class MemoryCompacted(Event, frozen=True, kw_only=True, tag="memory_compacted"):
    """A goal's working memory went over its token budget: its oldest observations (ordinals
    below ``through_ordinal``) are replaced by ``summary``."""

    through_ordinal: int
    observations: int
    summary: str
    method: str = "extractive"
    tokens_before: int
    tokens_after: int
    budget: int


# -- LLM calls (recorded so that replay never calls a model) -----------------------------


class LlmRequested(Event, frozen=True, kw_only=True, tag="llm_requested"):
    provider: str
    model: str
    request_hash: str
    purpose: str
    summary: str = ""


class LlmResponded(Event, frozen=True, kw_only=True, tag="llm_responded"):
    provider: str
    model: str
    request_hash: str
    content: str
    tool_calls: tuple[dict[str, Any], ...] = ()
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0


# -- evaluation (evaluator) --------------------------------------------------------------


class EvaluationCompleted(Event, frozen=True, kw_only=True, tag="evaluation_completed"):
    request_id: str
    iteration: int
    verdict: Verdict
    score: float
    feedback: str
    checks: tuple[Check, ...] = ()


AnyEvent = (
    GoalAccepted
    | GoalRejected
    | GoalCompleted
    | GoalFailed
    | ContextRequested
    | ContextProvided
    | PlanCreated
    | PlanRevised
    | TaskScheduled
    | EvaluationRequested
    | TaskStarted
    | ToolCalled
    | ToolReturned
    | ToolFailed
    | TaskCompleted
    | TaskFailed
    | MemoryStored
    | LlmRequested
    | LlmResponded
    | EvaluationCompleted
    | MemoryForgotten
    | MemoryCompacted
)

EVENT_TYPES: dict[str, type[Event]] = {
    str(cls.__struct_config__.tag): cls for cls in AnyEvent.__args__
}
