"""A goal's spans straight from its lean events (``projections.span_events``): the trace
follower's reading, without the timeline's drawing.

``projections.spans.goal_spans`` folds a goal's events into the timeline (``build_timeline``:
every bar with its label, its detail line, its arguments as JSON) and maps the timeline's bars
to spans. This module folds the lean events into only the steps that become spans, with only
what their spans carry, and maps them with the very same mapping (``timeline_spans``). It
leaves out what spans never show: labels and details, memory writes, the outcome's instant,
pauses, and content (prompts, outputs, arguments). So it serves traces without content; with
content, the follower reads the catalogue's events and the timeline.

It is a second reading of the log beside the timeline's: a unit test holds both to the same
spans, field for field, on recorded logs of every kind. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from events.calls import plain_call_id
from events.trace_context import parse_traceparent
from projections.span_events import (
    LeanApprovalDenied,
    LeanApprovalGranted,
    LeanApprovalRequested,
    LeanContextProvided,
    LeanContextRequested,
    LeanEvaluationCompleted,
    LeanEvaluationRequested,
    LeanEvent,
    LeanGoalAccepted,
    LeanGoalCancelled,
    LeanGoalCompleted,
    LeanGoalFailed,
    LeanGoalRejected,
    LeanLlmRequested,
    LeanLlmResponded,
    LeanPlanCreated,
    LeanPlanRevised,
    LeanTaskCancelled,
    LeanTaskCompleted,
    LeanTaskFailed,
    LeanTaskScheduled,
    LeanTaskStarted,
    LeanTimerFired,
    LeanTimerStarted,
    LeanToolCalled,
    LeanToolFailed,
    LeanToolRefused,
    LeanToolReturned,
)
from projections.spans import SpanRecord, timeline_spans
from projections.timeline import Bar, Timeline, clip, fold_events, settle_steps

__all__ = ["lean_goal_spans"]

TaskKey = tuple[int, str]
_LLM = (LeanLlmRequested, LeanLlmResponded)


def _service(producer: str) -> str:
    return producer.split("@", 1)[0]


@dataclass
class _Steps:
    """The fold's state: the steps that become spans, open by what opened them."""

    goal_id: str
    events_by_id: dict[str, LeanEvent] = field(default_factory=dict)
    bars: list[Bar] = field(default_factory=list)
    placed: set[int] = field(default_factory=set)  # ids of the bars in ``bars``
    by_trigger: dict[str, Bar] = field(default_factory=dict)
    tasks: dict[TaskKey, Bar] = field(default_factory=dict)
    tools: dict[TaskKey, str] = field(default_factory=dict)  # a scheduled task's tool
    calls: dict[tuple[TaskKey, int, int, int], Bar] = field(default_factory=dict)
    llm_open: dict[str, Bar] = field(default_factory=dict)
    contexts: dict[str, Bar] = field(default_factory=dict)
    evaluations: dict[int, Bar] = field(default_factory=dict)
    approvals: dict[str, Bar] = field(default_factory=dict)
    turns: dict[str, Bar] = field(default_factory=dict)
    status: str = "running"
    goal_facts: dict[str, str | int | float] = field(default_factory=dict)

    def place(self, bar: Bar) -> None:
        self.bars.append(bar)
        self.placed.add(id(bar))

    def open_turn(self, event: LeanEvent) -> None:
        at = event.occurred_at
        bar = Bar("plan", "planner", "", at, at)
        bar.event_id = event.event_id
        self.turns[event.event_id] = bar
        self.by_trigger[event.event_id] = bar

    def plan(self, event: LeanPlanCreated | LeanPlanRevised) -> None:
        cause = self.events_by_id.get(event.causation_id or "")
        while isinstance(cause, _LLM):
            cause = self.events_by_id.get(cause.causation_id or "")
        start = cause.occurred_at if cause is not None else event.occurred_at
        bar = self.turns.get(cause.event_id) if cause is not None else None
        if bar is None or id(bar) in self.placed:
            bar = Bar("plan", "planner", "", start, start)
            bar.event_id = event.event_id
        self.place(bar)
        bar.facts["strategy"] = event.strategy
        bar.facts["iteration"] = event.iteration
        bar.end = max(bar.start, event.occurred_at)
        bar.status = "completed"

    def context_requested(self, event: LeanContextRequested) -> None:
        at = event.occurred_at
        bar = Bar("context", "memory", "", at, at, status="running")
        bar.event_id = event.event_id
        self.contexts[event.event_id] = bar
        self.place(bar)

    def context_provided(self, event: LeanContextProvided) -> None:
        bar = self.contexts.get(event.request_id)
        if bar is not None:
            bar.end = max(bar.start, event.occurred_at)
            bar.status = "completed"
            bar.facts["items"] = len(event.items)
        self.open_turn(event)

    def task_scheduled(self, event: LeanTaskScheduled) -> None:
        at = event.occurred_at
        bar = Bar("task", "executor", "", at, at, status="scheduled", queued_from=at)
        bar.event_id = event.event_id
        facts = bar.facts
        facts["tool"] = event.tool
        facts["task_id"] = event.task_id
        facts["iteration"] = event.iteration
        key = (event.iteration, event.task_id)
        self.tasks[key] = bar
        self.tools[key] = event.tool
        self.by_trigger[event.event_id] = bar
        self.place(bar)

    def task_started(self, key: TaskKey, at: datetime) -> Bar | None:
        bar = self.tasks.get(key)
        if bar is not None and bar.status == "scheduled":
            bar.start = bar.end = at
            bar.status = "running"
        return bar

    def tool_called(
        self, key: TaskKey, tool: str, *, call: tuple[int, int, int], at: datetime, eid: str
    ) -> None:
        """Attempt, think step and position ``call`` of the task's tool, called ``at``."""
        task = self.task_started(key, at)
        if task is None:
            return
        bar = Bar("tool", "executor", "", at, at, depth=1, status="running", event_id=eid)
        bar.facts["tool"] = tool
        task.children.append(bar)
        self.calls[(key, *call)] = bar

    def implied_call(
        self, event: LeanTaskCompleted | LeanToolFailed, attempt: int, called_at: datetime
    ) -> None:
        """The call an outcome is the whole record of (``events.calls.implied_call``)."""
        key = (event.iteration, event.task_id)
        tool = self.tools.get(key)
        if tool is not None:
            eid = plain_call_id(event.producer, event.goal_id, *key, attempt)
            self.tool_called(key, tool, call=(attempt, 0, 0), at=called_at, eid=eid)

    def tool_ended(self, event: LeanToolReturned | LeanToolFailed) -> None:
        key = (event.iteration, event.task_id)
        bar = self.calls.get((key, event.attempt, event.step, event.call))
        if bar is None:
            return
        bar.end = max(bar.start, event.occurred_at)
        if isinstance(event, LeanToolFailed):
            bar.status, bar.error = "failed", event.error
        else:
            bar.status = "completed"
        bar.tool_ms = event.duration_ms

    def timer_started(self, event: LeanTimerStarted) -> None:
        """A call waits on a durable timer: it and its task are ``waiting`` until it fires (a
        retry's backoff waits for no call yet)."""
        key = (event.iteration, event.task_id)
        call = self.calls.get((key, event.attempt, event.step, event.call))
        task = self.tasks.get(key)
        if call is None or task is None or event.purpose == "retry":
            return
        call.status = task.status = "waiting"

    def timer_fired(self, event: LeanTimerFired) -> None:
        key = (event.iteration, event.task_id)
        call = self.calls.get((key, event.attempt, event.step, event.call))
        for bar in (call, self.tasks.get(key)):
            if bar is not None and bar.status == "waiting":
                bar.status = "running"

    def task_ended(self, event: LeanTaskCompleted | LeanTaskFailed | LeanTaskCancelled) -> None:
        task = self.tasks.get((event.iteration, event.task_id))
        if task is None:
            return
        if task.status == "scheduled":  # cancelled before it started
            task.start = event.occurred_at
        task.end = max(task.start, event.occurred_at)
        completed = isinstance(event, LeanTaskCompleted)
        for call in task.children:  # a plain task's last call ends with the task
            if call.kind == "tool" and call.status in ("running", "waiting"):
                call.end = task.end
                call.status = "completed" if completed else "failed"
                if isinstance(event, LeanTaskCompleted):
                    if event.attempt_duration_ms is not None:
                        call.tool_ms = event.attempt_duration_ms
                else:
                    call.error = event.error if isinstance(event, LeanTaskFailed) else event.reason
        task.tool_ms, task.attempts = event.duration_ms, event.attempts
        if isinstance(event, LeanTaskCompleted):
            task.status = "completed"
        elif isinstance(event, LeanTaskFailed):
            task.status, task.error = "failed", clip(event.error)
        else:
            task.status, task.error = "cancelled", clip(event.reason)
        tools = [c for c in task.children if c.kind == "tool"]
        if len(tools) == 1 and not [c for c in task.children if c.kind == "llm"]:
            task.children.remove(tools[0])  # one plain call is the task itself
            task.facts["call_event_id"] = tools[0].event_id

    def tool_refused(self, event: LeanToolRefused) -> None:
        task = self.tasks.get((event.iteration, event.task_id))
        if task is not None:
            at = event.occurred_at
            bar = Bar("tool", "executor", "", at, at, 1, status="refused", error=event.reason)
            bar.event_id = event.event_id
            bar.facts["tool"] = event.tool
            task.children.append(bar)

    def llm_requested(self, event: LeanLlmRequested) -> None:
        at = event.occurred_at
        bar = Bar("llm", _service(event.producer), "", at, at, depth=1, status="running")
        bar.event_id = event.event_id
        bar.facts["purpose"] = event.purpose
        if event.model:
            bar.facts["request_model"] = event.model
        self.llm_open[event.request_hash] = bar
        parent = self.by_trigger.get(event.causation_id or "")
        if parent is None:
            bar.depth = 0
            self.place(bar)
        else:
            bar.depth = parent.depth + 1
            parent.children.append(bar)

    def llm_responded(self, event: LeanLlmResponded) -> None:
        bar = self.llm_open.pop(event.request_hash, None)
        if bar is None:  # an answer whose request was never recorded (not written so today)
            at = event.occurred_at
            bar = Bar("llm", _service(event.producer), "", at, at)
            self.place(bar)
        bar.end = bar.start + timedelta(milliseconds=event.latency_ms)
        bar.status = "completed"
        facts = bar.facts
        facts["provider"] = event.provider
        facts["model"] = event.model
        if event.finish_reason:
            facts["finish_reason"] = event.finish_reason
        if event.request_model:
            facts["request_model"] = event.request_model
        bar.event_id = bar.event_id or event.event_id
        bar.tokens_in, bar.tokens_out = event.tokens_in, event.tokens_out
        bar.cost_usd = event.cost_usd

    def evaluation_requested(self, event: LeanEvaluationRequested) -> None:
        at = event.occurred_at
        bar = Bar("evaluation", "evaluator", "", at, at, status="running")
        bar.event_id = event.event_id
        bar.facts["iteration"] = event.iteration
        self.evaluations[event.iteration] = bar
        self.by_trigger[event.event_id] = bar
        self.place(bar)

    def evaluation_completed(self, event: LeanEvaluationCompleted) -> None:
        bar = self.evaluations.get(event.iteration)
        if bar is not None:
            bar.end = max(bar.start, event.occurred_at)
            bar.status = "completed"
            bar.facts["verdict"] = event.verdict
            bar.facts["score"] = event.score
        self.open_turn(event)

    def approval_requested(self, event: LeanApprovalRequested) -> None:
        at = event.occurred_at
        bar = Bar("approval", _service(event.producer), "", at, at, status="waiting")
        bar.event_id = event.event_id
        bar.facts.update(tool=event.tool, task_id=event.task_id, iteration=event.iteration)
        task = self.tasks.get((event.iteration, event.task_id))
        if task is not None and task.status == "running":
            bar.depth = task.depth + 1
            task.children.append(bar)
        else:
            self.place(bar)
        self.approvals[event.approval_id] = bar

    def approval_decided(self, event: LeanApprovalGranted | LeanApprovalDenied) -> None:
        bar = self.approvals.pop(event.approval_id, None)
        if bar is None:
            return
        bar.end = max(bar.start, event.occurred_at)
        bar.facts["by"] = event.by
        if isinstance(event, LeanApprovalGranted):
            bar.status = "granted"
        else:
            bar.status, bar.error = "denied", event.reason

    def outcome(self, status: str, reason: str | None, score: float | None) -> None:
        self.status = status
        if reason is not None:
            self.goal_facts["reason"] = reason
        if score is not None:
            self.goal_facts["score"] = score


def _task_started(steps: _Steps, event: LeanTaskStarted) -> None:
    steps.task_started((event.iteration, event.task_id), event.occurred_at)


def _tool_called(steps: _Steps, e: LeanToolCalled) -> None:
    call = (e.attempt, e.step, e.call)
    steps.tool_called((e.iteration, e.task_id), e.tool, call=call, at=e.occurred_at, eid=e.event_id)


def _tool_failed(steps: _Steps, event: LeanToolFailed) -> None:
    if event.called_at is not None:
        steps.implied_call(event, event.attempt, event.called_at)
    steps.tool_ended(event)


def _task_completed(steps: _Steps, event: LeanTaskCompleted) -> None:
    if event.called_at is not None:
        steps.implied_call(event, event.attempts, event.called_at)
    steps.task_ended(event)


# What each type does to the fold, by its exact type (as the timeline's ``_FOLDS``); the types
# it lacks make no span.
_FOLDS: dict[type[LeanEvent], Callable[[_Steps, Any], None]] = {
    LeanGoalAccepted: _Steps.open_turn,
    LeanContextRequested: _Steps.context_requested,
    LeanContextProvided: _Steps.context_provided,
    LeanPlanCreated: _Steps.plan,
    LeanPlanRevised: _Steps.plan,
    LeanTaskScheduled: _Steps.task_scheduled,
    LeanTaskStarted: _task_started,
    LeanToolCalled: _tool_called,
    LeanToolReturned: _Steps.tool_ended,
    LeanToolFailed: _tool_failed,
    LeanToolRefused: _Steps.tool_refused,
    LeanTimerStarted: _Steps.timer_started,
    LeanTimerFired: _Steps.timer_fired,
    LeanTaskCompleted: _task_completed,
    LeanTaskFailed: _Steps.task_ended,
    LeanTaskCancelled: _Steps.task_ended,
    LeanLlmRequested: _Steps.llm_requested,
    LeanLlmResponded: _Steps.llm_responded,
    LeanEvaluationRequested: _Steps.evaluation_requested,
    LeanEvaluationCompleted: _Steps.evaluation_completed,
    LeanApprovalRequested: _Steps.approval_requested,
    LeanApprovalGranted: _Steps.approval_decided,
    LeanApprovalDenied: _Steps.approval_decided,
    LeanGoalCompleted: lambda s, e: s.outcome("completed", None, e.score),
    LeanGoalFailed: lambda s, e: s.outcome("failed", e.reason, e.score),
    LeanGoalRejected: lambda s, e: s.outcome("rejected", e.reason, None),
    LeanGoalCancelled: lambda s, e: s.outcome("cancelled", e.reason, None),
}


def lean_goal_spans(goal_id: str, events: Iterable[LeanEvent]) -> list[SpanRecord]:
    """The goal's trace without content, as ``goal_spans(goal_id, events)`` makes it from the
    catalogue's events: the same records, from the same log."""
    mine = [event for event in events if event.goal_id == goal_id]
    if not mine:
        return []
    steps = _Steps(goal_id)
    first, last = fold_events(mine, steps, _FOLDS, steps.events_by_id)
    rows, end = settle_steps(steps.bars, steps.turns.values(), last)
    llm = [row for row in rows if row.kind == "llm"]
    timeline = Timeline(
        goal_id=goal_id,
        status=steps.status,
        start=first,
        end=end,
        bars=tuple(sorted(steps.bars, key=lambda b: b.queued_from or b.start)),
        tokens_in=sum(b.tokens_in for b in llm),
        tokens_out=sum(b.tokens_out for b in llm),
        cost_usd=sum(b.cost_usd for b in llm),
        first_event_id=mine[0].event_id,
        facts=steps.goal_facts,
    )
    # The trace context the goal's client sent with it (on its acceptance or rejection).
    client = next((e for e in mine if isinstance(e, LeanGoalAccepted | LeanGoalRejected)), None)
    parent = parse_traceparent(client.traceparent) if client is not None else None
    return timeline_spans(timeline, parent=parent)
