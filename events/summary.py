"""One readable line per event: what happened, for timelines (CLI, trajectory view).

The projections compute the same line in SQL (``projections.summary_sql``) and a test holds
the two identical, so this stays simple to mirror: free text is flattened and clipped, tool
arguments show as compact JSON, numbers with fixed decimals, and the whole line is only cut.
"""

from __future__ import annotations

import math
from functools import singledispatch
from typing import Any

from events.catalog import (
    ApprovalAnswered,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    CancelRequested,
    CommandRejected,
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCancelled,
    GoalCompleted,
    GoalDequeued,
    GoalFailed,
    GoalPaused,
    GoalQueued,
    GoalRejected,
    GoalResumed,
    IterationInterrupted,
    LeaseAcquired,
    LlmRequested,
    LlmResponded,
    MemoryCompacted,
    MemoryForgotten,
    MemoryStored,
    MessageQueued,
    MessageReceived,
    MessageRejected,
    PauseRequested,
    PlanCreated,
    PlanRevised,
    ResumeRequested,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TimerFired,
    TimerStarted,
    ToolCalled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
    ToolsListed,
)
from events.codec import encode
from events.model import Event, event_type

__all__ = ["REASON_WIDTH", "event_line", "summarize"]

WIDTH = 120
# A rejection's reason is the part that says what to fix: shown whole (reasons are built by
# intake validation and stay far below this; the bound only guards the terminal).
REASON_WIDTH = 1000  # the most the SQL twin's regular expression can repeat


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _clip(text: str, width: int = 60) -> str:
    return _cut(" ".join(text.split()), width)


def _number(value: float) -> str:
    """A float as DuckDB's JSON writer spells it: msgspec's shortest digits, but positional
    (not exponent) notation for decimal exponents from -6 to 20, as JavaScript does."""
    text = encode(value).decode()
    mantissa, _, exponent = text.partition("e")
    if not exponent or not math.isfinite(value) or not -7 < int(exponent) < 21:
        return text
    sign, digits = ("-", mantissa[1:]) if mantissa.startswith("-") else ("", mantissa)
    digits = digits.replace(".", "")
    point = int(exponent) + 1  # where the decimal point goes, counted in digits
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    whole, fraction = digits[:point].ljust(point, "0"), digits[point:]
    return f"{sign}{whole}.{fraction or '0'}"


def _json(value: Any) -> str:
    """Compact JSON, exactly as DuckDB renders a JSON value (keys in their order)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_json(str(k))}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_json, value)) + "]"
    if isinstance(value, float):
        return _number(value)
    return encode(value).decode()


@singledispatch
def _describe(event: Event) -> str:
    return event_type(event)


@_describe.register
def _(e: GoalAccepted) -> str:
    return f"accepted: {_clip(e.text)}"


@_describe.register
def _(e: GoalRejected) -> str:
    return f"rejected: {_clip(e.reason, REASON_WIDTH)}"


@_describe.register
def _(e: ContextRequested) -> str:
    return f"asked memory for context (k={e.k})"


@_describe.register
def _(e: ContextProvided) -> str:
    return f"{len(e.items)} memory item(s) provided"


@_describe.register
def _(e: PlanCreated) -> str:
    return f"plan #{e.iteration} ({e.strategy}): " + ", ".join(
        f"{t.task_id}:{t.tool}" for t in e.tasks
    )


@_describe.register
def _(e: PlanRevised) -> str:
    return f"plan #{e.iteration} revised after: {_clip(e.feedback)}"


@_describe.register
def _(e: TaskScheduled) -> str:
    return f"{e.task_id} scheduled: {e.tool} {_clip(_json(e.args), 50)}"


@_describe.register
def _(e: TaskStarted) -> str:
    return f"{e.task_id} started (attempt {e.attempt})"


@_describe.register
def _(e: ToolCalled) -> str:
    return f"{e.task_id} → {e.tool}({_clip(_json(e.args), 50)}) attempt {e.attempt}"


@_describe.register
def _(e: ToolReturned) -> str:
    return f"{e.task_id} ← {_clip(e.output)} ({e.duration_ms:.1f} ms)"


def _its_call(attempt: int, called_at: object) -> str:
    """An outcome that is its call's whole record (no tool_called: ``called_at`` is set)
    names the attempt the tool_called would have shown."""
    return "" if called_at is None else f" (attempt {attempt})"


@_describe.register
def _(e: ToolFailed) -> str:
    kind = "transient" if e.transient else "permanent"
    return f"{e.task_id} ✗ {kind}: {_clip(e.error)}{_its_call(e.attempt, e.called_at)}"


@_describe.register
def _(e: TaskCompleted) -> str:
    return f"{e.task_id} completed: {_clip(e.output)}{_its_call(e.attempts, e.called_at)}"


@_describe.register
def _(e: TaskFailed) -> str:
    return f"{e.task_id} failed after {e.attempts} attempt(s): {_clip(e.error)}"


@_describe.register
def _(e: MemoryStored) -> str:
    return f"remembered {e.key}"


@_describe.register
def _(e: MemoryForgotten) -> str:
    return f"forgot {e.key}" if e.key else "forgot everything learned in this goal"


@_describe.register
def _(e: MemoryCompacted) -> str:
    return (
        f"compacted {e.observations} observation(s) ({e.method}): "
        f"{e.tokens_before}→{e.tokens_after} tokens, budget {e.budget}"
    )


@_describe.register
def _(e: LeaseAcquired) -> str:
    return f"{e.holder} became the active {e.service}"


@_describe.register
def _(e: ToolsListed) -> str:
    return f"MCP server {e.server}: {len(e.tools)} tool(s)"


@_describe.register
def _(e: LlmRequested) -> str:
    return f"asked {e.model} ({e.purpose})"


@_describe.register
def _(e: LlmResponded) -> str:
    return f"{e.model} answered ({e.tokens_in}→{e.tokens_out} tokens)"


@_describe.register
def _(e: EvaluationRequested) -> str:
    return f"evaluate iteration {e.iteration}: {_clip(e.result, 50)}"


@_describe.register
def _(e: EvaluationCompleted) -> str:
    return f"{e.verdict} (score {e.score:.2f}): {_clip(e.feedback)}"


@_describe.register
def _(e: GoalCompleted) -> str:
    return f"completed after {e.iterations} iteration(s): {_clip(e.result)}"


@_describe.register
def _(e: GoalFailed) -> str:
    return f"failed after {e.iterations} iteration(s): {_clip(e.reason, 100)}"


@_describe.register
def _(e: ToolRefused) -> str:
    return f"{e.task_id} ⊘ {e.tool} refused: {_clip(e.reason)}"


def _because(reason: str) -> str:
    """``: <reason>`` when a reason was given, else nothing."""
    clipped = _clip(reason)
    return f": {clipped}" if clipped else ""


@_describe.register
def _(e: CancelRequested) -> str:
    return f"cancel requested{_because(e.reason)}"


@_describe.register
def _(e: PauseRequested) -> str:
    return f"pause requested{_because(e.reason)}"


@_describe.register
def _(e: ResumeRequested) -> str:
    return f"resume requested{_because(e.reason)}"


@_describe.register
def _(e: GoalCancelled) -> str:
    return f"cancelled{_because(e.reason)}"


@_describe.register
def _(e: GoalPaused) -> str:
    return f"paused{_because(e.reason)}"


@_describe.register
def _(e: GoalResumed) -> str:
    return f"resumed{_because(e.reason)}"


@_describe.register
def _(e: CommandRejected) -> str:
    return f"{e.command} rejected: {_clip(e.reason, 100)}"


@_describe.register
def _(e: TaskCancelled) -> str:
    return f"{e.task_id} cancelled after {e.attempts} attempt(s){_because(e.reason)}"


@_describe.register
def _(e: ApprovalRequested) -> str:
    return f"{e.task_id} waits for approval: {e.tool} {_clip(_json(e.args), 50)}"


@_describe.register
def _(e: ApprovalAnswered) -> str:
    return f"answer {e.decision} for {e.approval_id}{_because(e.reason)}"


@_describe.register
def _(e: ApprovalGranted) -> str:
    if e.edited:
        return (
            f"{e.task_id} approved with edited args {_clip(_json(e.args), 40)} "
            f"(asked: {_clip(_json(e.original_args), 40)})"
        )
    return f"{e.task_id} approved: {e.tool} {_clip(_json(e.args), 50)}"


@_describe.register
def _(e: ApprovalDenied) -> str:
    return f"{e.task_id} denied{_because(e.reason)}"


@_describe.register
def _(e: ApprovalRejected) -> str:
    return f"answer rejected: {_clip(e.reason, 100)}"


@_describe.register
def _(e: TimerStarted) -> str:
    if e.purpose == "retry":
        return f"{e.task_id} backs off until {_timestamp(e)}, then attempt {e.attempt}"
    return f"{e.task_id} waits on a durable timer until {_timestamp(e)}"


@_describe.register
def _(e: TimerFired) -> str:
    return f"{e.task_id} woken by its timer"


@_describe.register
def _(e: GoalQueued) -> str:
    return f"queued: {_clip(e.reason, 100)}"


@_describe.register
def _(e: GoalDequeued) -> str:
    return f"dequeued after {e.queued_ms:.0f} ms"


@_describe.register
def _(e: MessageReceived) -> str:
    return f"message: {_clip(e.text)}"


@_describe.register
def _(e: MessageQueued) -> str:
    return f"message queued for after iteration {e.iteration}: {_clip(e.text)}"


@_describe.register
def _(e: IterationInterrupted) -> str:
    return f"iteration {e.iteration} interrupted by a message: {_clip(e.text)}"


@_describe.register
def _(e: MessageRejected) -> str:
    return f"message rejected: {_clip(e.reason, 100)}"


def _timestamp(e: TimerStarted) -> str:
    """``due_at`` as the stored JSON spells it (the SQL twin reads that text)."""
    return encode(e.due_at).decode().strip('"')


def summarize(event: Event) -> str:
    return _cut(_describe(event), WIDTH)


def event_line(event: Event) -> str:
    """One event as a line for a person following a goal: its type and its summary."""
    summary = summarize(event)
    return f"{event_type(event)}: {summary}" if summary else event_type(event)
