"""A goal's steps as bars on one time axis, folded from its events: what a Gantt draws.

Pure: events in, bars out (no clock, no I/O). Each bar is one step a person recognises: the
planner planning or revising (with the model calls it made), memory answering a context
request, a task from its scheduling to its end (with its tool and model calls when it made
more than one, or retried), the evaluator judging, memory storing, the goal's outcome. Tasks
that ran in parallel are separate bars over the same stretch of time.

A model call is attached to the step that caused it: its ``causation_id`` is the event that
opened that step (the context answer or verdict a plan responds to, the ``task_scheduled`` of a
ReAct task, the ``evaluation_requested`` of a judgement). Its bar starts when it was requested
and lasts its recorded latency, since ``llm_requested`` and ``llm_responded`` carry the time of
the decision that asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

import msgspec

from events.calls import implied_call
from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCancelled,
    GoalCompleted,
    GoalFailed,
    GoalPaused,
    GoalRejected,
    GoalResumed,
    LlmRequested,
    LlmResponded,
    MemoryCompacted,
    MemoryStored,
    PlanCreated,
    PlanRevised,
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
)
from events.codec import encode
from events.instants import utc_text
from events.model import Event

__all__ = [
    "OPEN_STATUSES",
    "Bar",
    "BarKind",
    "Dated",
    "Timeline",
    "build_timeline",
    "clip",
    "fold_events",
    "service_of",
    "settle_steps",
]

BarKind = Literal[
    "plan",
    "context",
    "task",
    "tool",
    "llm",
    "evaluation",
    "memory",
    "outcome",
    "pause",
    "approval",
]
# The statuses of a step not yet over: drawn up to the goal's latest event.
OPEN_STATUSES = ("running", "scheduled", "waiting")
TaskKey = tuple[int, str]


def service_of(event: Event) -> str:
    """The producing service's name (``planner`` of ``planner@0.1.0``)."""
    return event.producer.split("@", 1)[0]


class Bar(msgspec.Struct):
    """One step: ``start`` to ``end`` (equal for an instant), nested ``depth`` levels deep.

    msgspec structs rather than dataclasses, this and ``Timeline``: a goal's fold makes a
    dozen bars, and a dataclass's ``__init__`` (a frozen one's most) cost several times as
    much, a sixth of the trace follower's fold."""

    kind: BarKind
    actor: str
    label: str
    start: datetime
    end: datetime
    depth: int = 0
    detail: str = ""
    status: str = ""
    # A task's time between being scheduled (``queued_from``) and starting (``start``).
    queued_from: datetime | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    tool_ms: float | None = None  # a task's tool time over its attempts, as recorded
    attempts: int = 0  # a task's attempts, when it ended
    error: str = ""  # why a task or call failed
    # The event that opened the step (what a trace's span id is derived from), and what the
    # events said about it, by name: tool, provider, model, finish_reason, and the content
    # (args, output, prompt, completion) that only an opted-in reader shows.
    event_id: str = ""
    facts: dict[str, str | int | float] = {}
    children: list[Bar] = []

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) / timedelta(milliseconds=1)

    @property
    def instant(self) -> bool:
        return self.kind in ("memory", "outcome")


class Timeline(msgspec.Struct, frozen=True):
    goal_id: str
    status: str
    start: datetime
    end: datetime
    bars: tuple[Bar, ...]  # top-level steps in the order they started; children nested
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    first_event_id: str = ""
    # The goal's text, result, score or reason, as its events recorded them.
    facts: dict[str, str | int | float] = {}

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) / timedelta(milliseconds=1)

    def fraction(self, at: datetime) -> float:
        """Where ``at`` lies on the goal's time axis: 0 at its start, 1 at its end."""
        span = self.duration_ms
        if span <= 0:
            return 0.0
        offset = (at - self.start) / timedelta(milliseconds=1)
        return min(max(offset / span, 0.0), 1.0)

    def rows(self) -> list[Bar]:
        """Every bar in drawing order: each step, then its nested calls in time order."""
        ordered: list[Bar] = []

        def visit(bar: Bar) -> None:
            ordered.append(bar)
            if not bar.instant:  # an instant's children are its marks, drawn on its row
                for child in sorted(bar.children, key=lambda b: b.start):
                    visit(child)

        for bar in self.bars:
            visit(bar)
        return ordered


def _ms(value: float) -> str:
    if value < 1:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.1f} ms"
    return f"{value / 1000:.2f} s"


def clip(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@dataclass
class _Folder:
    """The fold's working state: bars open by the event that opened them, tasks by key."""

    events_by_id: dict[str, Event] = field(default_factory=dict)
    bars: list[Bar] = field(default_factory=list)
    by_trigger: dict[str, Bar] = field(default_factory=dict)
    tasks: dict[TaskKey, Bar] = field(default_factory=dict)
    scheduled: dict[TaskKey, TaskScheduled] = field(default_factory=dict)
    task_trigger: dict[str, TaskKey] = field(default_factory=dict)
    calls: dict[tuple[TaskKey, int, int, int], Bar] = field(default_factory=dict)
    llm_open: dict[str, Bar] = field(default_factory=dict)
    contexts: dict[str, Bar] = field(default_factory=dict)
    evaluations: dict[int, Bar] = field(default_factory=dict)
    memory: Bar | None = None
    paused: Bar | None = None
    approvals: dict[str, Bar] = field(default_factory=dict)  # waiting, by approval id
    # Inputs the planner may answer with model calls, by event id: a plan bar once it plans.
    turns: dict[str, Bar] = field(default_factory=dict)
    status: str = "running"
    tool_calls: int = 0
    goal_facts: dict[str, str | int | float] = field(default_factory=dict)

    def trigger(self, event: Event) -> Event | None:
        """The event a decision answers, looking through the model calls it made on the way."""
        cause = self.events_by_id.get(event.causation_id or "")
        while isinstance(cause, LlmRequested | LlmResponded):
            cause = self.events_by_id.get(cause.causation_id or "")
        return cause

    def open_task(self, event: TaskScheduled) -> None:
        again = f" #{event.iteration}" if event.iteration > 1 else ""
        label = f"{event.task_id} {event.tool}{again}"
        bar = Bar(
            "task", "executor", label, event.occurred_at, event.occurred_at, status="scheduled"
        )
        bar.queued_from = event.occurred_at
        bar.event_id = event.event_id
        bar.facts.update(tool=event.tool, task_id=event.task_id, iteration=event.iteration)
        bar.facts["args"] = encode(event.args).decode()
        self.tasks[(event.iteration, event.task_id)] = bar
        self.scheduled[(event.iteration, event.task_id)] = event
        self.task_trigger[event.event_id] = (event.iteration, event.task_id)
        self.by_trigger[event.event_id] = bar
        self.bars.append(bar)

    def task_started(self, key: TaskKey, at: datetime) -> Bar | None:
        bar = self.tasks.get(key)
        if bar is not None and bar.status == "scheduled":
            bar.start = bar.end = at
            bar.status = "running"
        return bar

    def tool_called(self, event: ToolCalled) -> None:
        self.tool_calls += 1
        key = (event.iteration, event.task_id)
        task = self.task_started(key, event.occurred_at)
        if task is None:
            return
        label = event.tool if event.step == 0 else f"{event.tool} (step {event.step})"
        if event.attempt > 1 and event.step == 0:
            label = f"{event.tool} (attempt {event.attempt})"
        call = Bar("tool", "executor", label, event.occurred_at, event.occurred_at, depth=1)
        call.status = "running"
        call.event_id = event.event_id
        call.facts.update(tool=event.tool, attempt=event.attempt, args=encode(event.args).decode())
        task.children.append(call)
        self.calls[(key, event.attempt, event.step, event.call)] = call

    def call_of_outcome(self, outcome: TaskCompleted | ToolFailed) -> None:
        """A call only its outcome records (``called_at``) starts as a recorded one does."""
        task = self.scheduled.get((outcome.iteration, outcome.task_id))
        call = None if task is None else implied_call(outcome, task)
        if call is not None:
            self.tool_called(call)

    def tool_ended(self, event: ToolReturned | ToolFailed) -> None:
        key = (event.iteration, event.task_id)
        call = self.calls.get((key, event.attempt, event.step, event.call))
        if call is None:
            return
        call.end = max(call.start, event.occurred_at)
        if isinstance(event, ToolFailed):
            call.status = "failed"
            call.detail = f"failed {_ms(event.duration_ms)}: {clip(event.error)}"
            call.error = event.error
        else:
            call.status = "completed"
            call.detail = _ms(event.duration_ms)
            call.facts["output"] = event.output
        call.tool_ms = event.duration_ms

    def timer_started(self, event: TimerStarted) -> None:
        """A call waits on a durable timer (a plain task's long sleep, a ReAct model's): it and
        its task are ``waiting`` until it fires. A retry's backoff waits for no call yet."""
        key = (event.iteration, event.task_id)
        call = self.calls.get((key, event.attempt, event.step, event.call))
        task = self.tasks.get(key)
        if call is None or task is None or event.purpose == "retry":
            return
        call.status = task.status = "waiting"
        call.detail = f"waits until {utc_text(event.due_at)}"

    def timer_fired(self, event: TimerFired) -> None:
        key = (event.iteration, event.task_id)
        call = self.calls.get((key, event.attempt, event.step, event.call))
        task = self.tasks.get(key)
        for bar in (call, task):
            if bar is not None and bar.status == "waiting":
                bar.status = "running"
        if call is not None:
            call.detail = ""

    def task_ended(self, event: TaskCompleted | TaskFailed | TaskCancelled) -> None:
        key = (event.iteration, event.task_id)
        task = self.tasks.get(key)
        if task is None:
            return
        if task.status == "scheduled":  # cancelled before it started
            task.start = event.occurred_at
        task.end = max(task.start, event.occurred_at)
        for call in task.children:  # a plain task's last call ends with the task
            if call.kind == "tool" and call.status in ("running", "waiting"):
                call.end = task.end
                call.status = "completed" if isinstance(event, TaskCompleted) else "failed"
                if isinstance(event, TaskCompleted) and event.attempt_duration_ms is not None:
                    call.detail = _ms(event.attempt_duration_ms)
                    call.tool_ms = event.attempt_duration_ms
                if isinstance(event, TaskCompleted):
                    call.facts["output"] = event.output
                else:
                    call.error = getattr(event, "error", "") or getattr(event, "reason", "")
        task.tool_ms, task.attempts = event.duration_ms, event.attempts
        if isinstance(event, TaskCompleted):
            task.status = "completed"
        elif isinstance(event, TaskFailed):
            task.status, task.error = "failed", clip(event.error)
        else:
            task.status, task.error = "cancelled", clip(event.reason)
        task.detail = task.status
        if isinstance(event, TaskCompleted):
            task.facts["output"] = event.output
        tools = [c for c in task.children if c.kind == "tool"]
        if len(tools) == 1 and not [c for c in task.children if c.kind == "llm"]:
            task.children.remove(tools[0])  # one plain call is the task itself
            task.facts["call_event_id"] = tools[0].event_id

    def llm_requested(self, event: LlmRequested) -> None:
        actor = service_of(event)
        label = f"llm {event.purpose}"
        bar = Bar("llm", actor, label, event.occurred_at, event.occurred_at, depth=1)
        bar.status = "running"
        bar.event_id = event.event_id
        bar.facts.update(purpose=event.purpose, prompt=event.summary)
        if event.model:
            bar.facts["request_model"] = event.model
        self.llm_open[event.request_hash] = bar
        parent = self.by_trigger.get(event.causation_id or "")
        if parent is None:
            bar.depth = 0
            self.bars.append(bar)
        else:
            bar.depth = parent.depth + 1
            parent.children.append(bar)

    def llm_responded(self, event: LlmResponded) -> None:
        bar = self.llm_open.pop(event.request_hash, None)
        if bar is None:  # an answer whose request was never recorded (not written so today)
            bar = Bar("llm", service_of(event), "llm", event.occurred_at, event.occurred_at)
            self.bars.append(bar)
        bar.end = bar.start + timedelta(milliseconds=event.latency_ms)
        bar.status = "completed"
        bar.label = f"{bar.label} {event.model}".rstrip()
        bar.facts.update(provider=event.provider, model=event.model, completion=event.content)
        bar.facts["tool_calls"] = len(event.tool_calls)
        if event.finish_reason:
            bar.facts["finish_reason"] = event.finish_reason
        if event.request_model:
            bar.facts["request_model"] = event.request_model
        bar.event_id = bar.event_id or event.event_id
        bar.tokens_in, bar.tokens_out, bar.cost_usd = (
            event.tokens_in,
            event.tokens_out,
            event.cost_usd,
        )
        bar.detail = (
            f"{event.tokens_in}→{event.tokens_out} tok ${event.cost_usd:.4f} "
            f"{_ms(event.latency_ms)}"
        )

    def plan(self, event: PlanCreated | PlanRevised) -> None:
        cause = self.trigger(event)
        start = cause.occurred_at if cause is not None else event.occurred_at
        name = "plan" if isinstance(event, PlanCreated) else "revise"
        bar = self.turns.get(cause.event_id) if cause is not None else None
        if bar is None or bar in self.bars:
            bar = Bar("plan", "planner", name, start, start)
            bar.event_id = event.event_id
        self.bars.append(bar)
        bar.facts.update(strategy=event.strategy, iteration=event.iteration)
        bar.label = f"planner {name} #{event.iteration}"
        bar.end = max(bar.start, event.occurred_at)
        bar.status = "completed"
        tasks = len(event.tasks)
        bar.detail = f"{event.strategy}, {tasks} task{'s' if tasks != 1 else ''}"

    def open_plan_turn(self, event: Event) -> None:
        """Inputs the planner may plan on with a model: its calls nest under the plan bar."""
        bar = Bar("plan", "planner", "planner turn", event.occurred_at, event.occurred_at)
        bar.event_id = event.event_id
        self.turns[event.event_id] = bar
        self.by_trigger[event.event_id] = bar

    def memory_mark(self, event: MemoryStored | MemoryCompacted) -> None:
        if self.memory is None:
            self.memory = Bar("memory", "memory", "memory", event.occurred_at, event.occurred_at)
            self.bars.append(self.memory)
            self.memory.detail = ""
        marks = self.memory.children
        marks.append(
            Bar(
                "memory",
                "memory",
                "stored" if isinstance(event, MemoryStored) else "compacted",
                event.occurred_at,
                event.occurred_at,
            )
        )
        self.memory.end = event.occurred_at
        stored = sum(1 for m in marks if m.label == "stored")
        compacted = len(marks) - stored
        parts = [f"{stored} stored"] if stored else []
        parts += [f"{compacted} compacted"] if compacted else []
        self.memory.detail = ", ".join(parts)

    def outcome(self, event: Event, status: str, detail: str) -> None:
        self.status = status
        for name in ("result", "score", "reason", "iterations"):
            value = getattr(event, name, None)
            if isinstance(value, str | int | float):
                self.goal_facts[name] = value
        bar = Bar("outcome", "planner", f"goal {status}", event.occurred_at, event.occurred_at)
        bar.detail = detail
        self.bars.append(bar)

    def context_requested(self, event: ContextRequested) -> None:
        at = event.occurred_at
        bar = Bar("context", "memory", "memory context", at, at, status="running")
        bar.event_id = event.event_id
        bar.facts.update(query=event.query, k=event.k)
        self.contexts[event.event_id] = bar
        self.bars.append(bar)

    def context_provided(self, event: ContextProvided) -> None:
        bar = self.contexts.get(event.request_id)
        if bar is not None:
            bar.end = max(bar.start, event.occurred_at)
            bar.status = "completed"
            bar.detail = f"{len(event.items)} items recalled"
            bar.facts["items"] = len(event.items)
        self.open_plan_turn(event)

    def tool_refused(self, event: ToolRefused) -> None:
        task = self.tasks.get((event.iteration, event.task_id))
        if task is not None:
            at = event.occurred_at
            refused = Bar("tool", "executor", f"{event.tool} (step {event.step})", at, at, 1)
            refused.status = "refused"
            refused.event_id = event.event_id
            refused.error = event.reason
            refused.facts.update(tool=event.tool, args=encode(event.args).decode())
            refused.detail = f"refused: {clip(event.reason)}"
            task.children.append(refused)

    def evaluation_requested(self, event: EvaluationRequested) -> None:
        at = event.occurred_at
        label = f"evaluator judge #{event.iteration}"
        bar = Bar("evaluation", "evaluator", label, at, at, status="running")
        bar.event_id = event.event_id
        bar.facts["iteration"] = event.iteration
        self.evaluations[event.iteration] = bar
        self.by_trigger[event.event_id] = bar
        self.bars.append(bar)

    def evaluation_completed(self, event: EvaluationCompleted) -> None:
        bar = self.evaluations.get(event.iteration)
        if bar is not None:
            bar.end = max(bar.start, event.occurred_at)
            bar.status = "completed"
            bar.detail = f"{event.verdict} {event.score:.2f}"
            bar.facts.update(verdict=event.verdict, score=event.score)
        self.open_plan_turn(event)

    def approval_requested(self, event: ApprovalRequested) -> None:
        """A call waits for a person: a bar of its own until the answer is decided (a plain
        task's bar starts once it is scheduled, after; a call inside a running task nests)."""
        at = event.occurred_at
        again = f" #{event.iteration}" if event.iteration > 1 else ""
        call = f" (step {event.step})" if event.step else ""
        label = f"approval {event.task_id} {event.tool}{call}{again}"
        # The planner asks for a plain task's call, the executor for a ReAct model's.
        bar = Bar("approval", service_of(event), label, at, at, status="waiting")
        bar.event_id = event.event_id
        bar.facts.update(tool=event.tool, task_id=event.task_id, iteration=event.iteration)
        bar.facts["reason"] = event.reason
        task = self.tasks.get((event.iteration, event.task_id))
        if task is not None and task.status == "running":
            bar.depth = task.depth + 1
            task.children.append(bar)
        else:
            self.bars.append(bar)
        self.approvals[event.approval_id] = bar

    def approval_decided(self, event: ApprovalGranted | ApprovalDenied) -> None:
        bar = self.approvals.pop(event.approval_id, None)
        if bar is None:
            return
        bar.end = max(bar.start, event.occurred_at)
        by = f" by {event.by}" if event.by else ""
        bar.facts["by"] = event.by
        if isinstance(event, ApprovalGranted):
            bar.status = "granted"
            bar.detail = f"granted{by}{', edited' if event.edited else ''}"
        else:
            bar.status, bar.error = "denied", event.reason
            bar.detail = f"denied{by}: {clip(event.reason)}"

    def pause(self, event: GoalPaused | GoalResumed) -> None:
        if isinstance(event, GoalPaused):
            at = event.occurred_at
            self.paused = Bar("pause", "planner", "planner paused", at, at, status="running")
            self.bars.append(self.paused)
        elif self.paused is not None:
            self.paused.end = event.occurred_at
            self.paused.status = "completed"
            self.paused = None


def _goal_accepted(folder: _Folder, event: GoalAccepted) -> None:
    folder.goal_facts["text"] = event.text
    folder.open_plan_turn(event)


def _task_started(folder: _Folder, event: TaskStarted) -> None:
    folder.task_started((event.iteration, event.task_id), event.occurred_at)


def _tool_failed(folder: _Folder, event: ToolFailed) -> None:
    folder.call_of_outcome(event)
    folder.tool_ended(event)


def _task_completed(folder: _Folder, event: TaskCompleted) -> None:
    folder.call_of_outcome(event)
    folder.task_ended(event)


def _goal_completed(folder: _Folder, event: GoalCompleted) -> None:
    folder.outcome(event, "completed", f"score {event.score:.2f}")


def _goal_ended(
    status: str,
) -> Callable[[_Folder, GoalFailed | GoalRejected | GoalCancelled], None]:
    def ended(folder: _Folder, event: GoalFailed | GoalRejected | GoalCancelled) -> None:
        folder.outcome(event, status, clip(event.reason, 60))

    return ended


# What each type of event does to the fold, by its exact type: one dictionary look-up per
# event (a ``match`` over twenty class patterns tried them one by one). Other types draw
# nothing.
_FOLDS: dict[type[Event], Callable[[_Folder, Any], None]] = {
    GoalAccepted: _goal_accepted,
    ContextRequested: _Folder.context_requested,
    ContextProvided: _Folder.context_provided,
    PlanCreated: _Folder.plan,
    PlanRevised: _Folder.plan,
    TaskScheduled: _Folder.open_task,
    TaskStarted: _task_started,
    ToolCalled: _Folder.tool_called,
    ToolReturned: _Folder.tool_ended,
    ToolFailed: _tool_failed,
    ToolRefused: _Folder.tool_refused,
    TimerStarted: _Folder.timer_started,
    TimerFired: _Folder.timer_fired,
    TaskCompleted: _task_completed,
    TaskFailed: _Folder.task_ended,
    TaskCancelled: _Folder.task_ended,
    LlmRequested: _Folder.llm_requested,
    LlmResponded: _Folder.llm_responded,
    EvaluationRequested: _Folder.evaluation_requested,
    EvaluationCompleted: _Folder.evaluation_completed,
    MemoryStored: _Folder.memory_mark,
    MemoryCompacted: _Folder.memory_mark,
    GoalPaused: _Folder.pause,
    GoalResumed: _Folder.pause,
    ApprovalRequested: _Folder.approval_requested,
    ApprovalGranted: _Folder.approval_decided,
    ApprovalDenied: _Folder.approval_decided,
    GoalCompleted: _goal_completed,
    GoalFailed: _goal_ended("failed"),
    GoalRejected: _goal_ended("rejected"),
    GoalCancelled: _goal_ended("cancelled"),
}


def build_timeline(goal_id: str, events: Iterable[Event]) -> Timeline | None:
    """The goal's steps, from its events in stream order (None: it has none)."""
    folder = _Folder()
    mine = [event for event in events if event.goal_id == goal_id]
    if not mine:
        return None
    first_event_id = mine[0].event_id
    first, last = fold_events(mine, folder, _FOLDS, folder.events_by_id)
    rows, end = settle_steps(folder.bars, folder.turns.values(), last)
    for row in rows:
        if row.status in OPEN_STATUSES:
            row.detail = row.detail or row.status
    llm = [row for row in rows if row.kind == "llm"]
    return Timeline(
        goal_id=goal_id,
        status=folder.status,
        start=first,
        end=end,
        bars=tuple(sorted(folder.bars, key=lambda b: b.queued_from or b.start)),
        llm_calls=len(llm),
        tokens_in=sum(b.tokens_in for b in llm),
        tokens_out=sum(b.tokens_out for b in llm),
        cost_usd=sum(b.cost_usd for b in llm),
        tool_calls=folder.tool_calls,
        first_event_id=first_event_id,
        facts=folder.goal_facts,
    )


class Dated(Protocol):
    """What a fold needs of every event, however it was decoded."""

    @property
    def event_id(self) -> str: ...

    @property
    def occurred_at(self) -> datetime: ...


E = TypeVar("E", bound=Dated)
S = TypeVar("S")


def fold_events(
    events: list[E],
    state: S,
    folds: Mapping[type[E], Callable[[S, Any], None]],
    by_id: dict[str, E],
) -> tuple[datetime, datetime]:
    """Fold ``events`` (in stream order) into ``state``, each by the fold of its exact type
    (one dictionary look-up per event; other types fold nothing), keeping every event by its
    id in ``by_id`` for the folds to look causes up. The earliest and latest time of them."""
    first = last = events[0].occurred_at
    for event in events:
        by_id[event.event_id] = event
        at = event.occurred_at
        if at < first:
            first = at
        elif at > last:
            last = at
        fold = folds.get(type(event))
        if fold is not None:
            fold(state, event)
    return first, last


def settle_steps(
    bars: list[Bar], turns: Iterable[Bar], last: datetime
) -> tuple[list[Bar], datetime]:
    """The fold's last step, once every event is in: the planner's turns that made model calls
    but no plan join ``bars``, and steps still open reach the latest event (``last``): they run
    on. Every bar with its nested ones, in that order, and where the goal's time axis ends."""
    placed = {id(bar) for bar in bars}
    for turn in turns:
        if turn.children and id(turn) not in placed:
            turn.end = max(turn.start, *(c.end for c in turn.children))
            turn.status = "completed"
            bars.append(turn)
    rows = [row for bar in bars for row in _flatten(bar)]
    end = max([last, *(row.end for row in rows)])
    for row in rows:
        if row.status in OPEN_STATUSES:
            row.end = max(row.end, last)
    return rows, end


def _flatten(bar: Bar) -> list[Bar]:
    return [bar, *(row for child in bar.children for row in _flatten(child))]
