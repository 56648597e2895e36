"""Every event type agora records. Tags are past tense, stable, and never reused."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from events.approvals import ApprovalPolicy
from events.model import (
    Budget,
    Check,
    Event,
    Expect,
    ForkPoint,
    MemoryItem,
    OutputRef,
    TaskOutcome,
    TaskSpec,
)

__all__ = [
    "EVENT_TYPES",
    "AnyEvent",
    "ApprovalAnswered",
    "ApprovalDecision",
    "ApprovalDenied",
    "ApprovalGranted",
    "ApprovalRejected",
    "ApprovalRequested",
    "CancelRequested",
    "CommandRejected",
    "ContextProvided",
    "ContextRequested",
    "EvaluationCompleted",
    "EvaluationRequested",
    "GoalAccepted",
    "GoalCancelled",
    "GoalCompleted",
    "GoalDequeued",
    "GoalFailed",
    "GoalPaused",
    "GoalQueued",
    "GoalRejected",
    "GoalResumed",
    "IterationInterrupted",
    "LeaseAcquired",
    "ListedTool",
    "LlmRequested",
    "LlmResponded",
    "MemoryCompacted",
    "MemoryForgotten",
    "MemoryStored",
    "MessagePolicy",
    "MessageQueued",
    "MessageReceived",
    "MessageRejected",
    "PauseRequested",
    "PlanCreated",
    "PlanRevised",
    "ResumeRequested",
    "TaskCancelled",
    "TaskCompleted",
    "TaskFailed",
    "TaskScheduled",
    "TaskStarted",
    "TimerFired",
    "TimerStarted",
    "ToolCalled",
    "ToolFailed",
    "ToolRefused",
    "ToolReturned",
    "ToolsListed",
]

Verdict = Literal["accept", "revise"]
# The commands that steer a running goal (agora.intake.cancel / .pause / .resume).
ControlAction = Literal["cancel", "pause", "resume"]
# What a person answers to an approval request (agora.intake.approval).
ApprovalDecision = Literal["approve", "deny"]
# What a goal does with input that arrives while it runs (agora.intake.message), chosen at
# submission: refuse it, take it in after the current iteration, or stop that iteration for it.
MessagePolicy = Literal["reject", "enqueue", "interrupt"]


# -- goal lifecycle (planner) ------------------------------------------------------------


class GoalAccepted(Event, frozen=True, kw_only=True, tag="goal_accepted"):
    command_id: str
    text: str
    steps: tuple[TaskSpec, ...] | None = None
    expect: Expect | None = None
    max_iterations: int = 3
    metadata: dict[str, Any] = {}
    budget: Budget | None = None
    # Untrusted tools the goal's tasks may call (a step may also grant its own).
    allowed_tools: tuple[str, ...] = ()
    # A fork (``agora fork``): the goal it started from, and the tasks of ``steps`` that had
    # completed there by then, with their outputs (they are not run again).
    forked_from: ForkPoint | None = None
    carried: tuple[TaskOutcome, ...] = ()
    # The approval policy the goal runs under (the platform's, with what its intake added);
    # None: none of its calls needs approval.
    approval: ApprovalPolicy | None = None
    # The client's W3C trace context (the intake message's ``traceparent`` header,
    # normalized): the goal's trace is a child of the client's span. None: a trace of its own.
    traceparent: str | None = None
    # Among goals waiting for the same flow key (docs/flow.md), a higher one starts first.
    priority: int = 0
    # What a message for the goal while it runs does (older events: reject, as nothing else
    # existed when they were written).
    on_message: MessagePolicy = "reject"


class GoalRejected(Event, frozen=True, kw_only=True, tag="goal_rejected"):
    command_id: str
    reason: str
    text: str = ""
    traceparent: str | None = None  # as on goal_accepted


class GoalCompleted(Event, frozen=True, kw_only=True, tag="goal_completed"):
    result: str
    iterations: int
    score: float
    # Set when the result was too large to carry: it is in the outputs store, ``result`` is
    # only its preview (events/outputs.py).
    result_ref: OutputRef | None = None


class GoalFailed(Event, frozen=True, kw_only=True, tag="goal_failed"):
    reason: str
    iterations: int
    score: float | None = None


# -- flow control (planner) ----------------------------------------------------------------
#
# A goal the flow policy limits (docs/flow.md) takes a slot of each of its keys before it is
# planned. ``goal_dequeued`` records that it took them (straight away, or after waiting);
# ``goal_queued`` that it had to wait first. The active planner rebuilds which goals hold
# slots, and which wait, from these and the goals' outcomes.


class GoalQueued(Event, frozen=True, kw_only=True, tag="goal_queued"):
    """The goal waits: a key it has is at its limit. Nothing of it is planned until
    ``goal_dequeued``."""

    keys: tuple[str, ...]
    priority: int = 0
    # Its place in the order of arrival (goals of equal priority start in this order).
    ticket: int
    reason: str = ""


class GoalDequeued(Event, frozen=True, kw_only=True, tag="goal_dequeued"):
    """The goal took a slot of each of its keys and is planned now; it holds them until it
    completes, fails or is cancelled."""

    keys: tuple[str, ...]
    priority: int = 0
    # How long it waited (0: it never did).
    queued_ms: float = 0.0


# -- steering a goal: cancel, pause, resume (planner) ---------------------------------------
#
# A command on agora.intake.cancel / .pause / .resume is recorded as a ``*_requested`` event on
# the goal (by whichever planner replica admits it); the active planner alone decides on it
# (``goal_cancelled``, ``goal_paused``, ``goal_resumed``, or ``command_rejected``). Every
# decision names the command it answers, so a command is acted on once, however often it is
# sent.


class CancelRequested(Event, frozen=True, kw_only=True, tag="cancel_requested"):
    command_id: str
    reason: str = ""


class PauseRequested(Event, frozen=True, kw_only=True, tag="pause_requested"):
    command_id: str
    reason: str = ""


class ResumeRequested(Event, frozen=True, kw_only=True, tag="resume_requested"):
    command_id: str
    reason: str = ""


class GoalCancelled(Event, frozen=True, kw_only=True, tag="goal_cancelled"):
    """The goal ends: nothing more is scheduled, and running tasks are told to stop."""

    command_id: str
    reason: str = ""
    iterations: int = 1


class GoalPaused(Event, frozen=True, kw_only=True, tag="goal_paused"):
    """Nothing new is scheduled until ``goal_resumed``; running tasks finish their step."""

    command_id: str
    reason: str = ""


class GoalResumed(Event, frozen=True, kw_only=True, tag="goal_resumed"):
    """The goal goes on from where it stood when it was paused."""

    command_id: str
    reason: str = ""


class CommandRejected(Event, frozen=True, kw_only=True, tag="command_rejected"):
    """A command that cannot apply (the goal is unknown, finished, already paused, not paused,
    or the command is invalid); nothing else happens. On the goal it names when that goal
    exists, otherwise on the reserved goal id ``_intake``; ``target_goal_id`` is always the goal
    the command named (empty when it named none)."""

    command_id: str
    command: ControlAction
    target_goal_id: str
    reason: str


# -- approvals: a person decides whether a tool call runs (planner) ----------------------------
#
# A call the goal's approval policy names becomes ``approval_requested`` instead of running. An
# answer on agora.intake.approval is recorded on the goal as ``approval_answered`` (by whichever
# planner replica admits it); the active planner alone decides on it: ``approval_granted`` (the
# task is scheduled, with the edited arguments if any), ``approval_denied`` (the task fails with
# the reason), or ``approval_rejected`` (the answer cannot apply; nothing else happens).


class ApprovalRequested(Event, frozen=True, kw_only=True, tag="approval_requested"):
    """The call waits for a person: ``approval_id`` is what an answer names."""

    approval_id: str
    iteration: int
    task_id: str
    tool: str
    args: dict[str, Any]
    description: str = ""
    reason: str  # why the policy wants a person's approval for this call
    answerers: tuple[str, ...] = ()  # who may answer (empty: whoever may publish answers)
    deadline: datetime  # no answer by then: denied
    step: int = 0  # a ReAct task's think step and call (0: a plain task)
    call: int = 0


class ApprovalAnswered(Event, frozen=True, kw_only=True, tag="approval_answered"):
    """An answer as it was sent, recorded on its goal before anything is decided about it."""

    command_id: str
    approval_id: str
    decision: ApprovalDecision
    reason: str = ""
    args: dict[str, Any] | None = None  # edited arguments (approve only)
    by: str = ""


class ApprovalGranted(Event, frozen=True, kw_only=True, tag="approval_granted"):
    """The call runs with ``args``: the requested ones, or the person's edit of them."""

    approval_id: str
    command_id: str
    iteration: int
    task_id: str
    tool: str
    args: dict[str, Any]
    original_args: dict[str, Any]
    edited: bool = False
    by: str = ""
    reason: str = ""
    step: int = 0
    call: int = 0


class ApprovalDenied(Event, frozen=True, kw_only=True, tag="approval_denied"):
    """The call never runs; the task fails with ``reason`` (a deadline's: no answer in time)."""

    approval_id: str
    command_id: str
    iteration: int
    task_id: str
    tool: str
    reason: str
    by: str = ""
    step: int = 0
    call: int = 0


class ApprovalRejected(Event, frozen=True, kw_only=True, tag="approval_rejected"):
    """An answer that cannot apply (no such request, already answered, the goal ended, edited
    arguments that do not fit the tool, an answerer not allowed, an invalid command). On the
    goal when it exists, else on the reserved goal id ``_intake``."""

    command_id: str
    approval_id: str
    target_goal_id: str
    reason: str


# -- input while a goal runs (planner) ------------------------------------------------------
#
# A message on agora.intake.message is recorded on its goal as ``message_received`` (by whichever
# planner replica admits it); the active planner alone decides on it by the goal's policy:
# ``message_rejected``, ``message_queued`` (taken in by the revision after the current
# iteration), or ``iteration_interrupted`` (the iteration's open tasks stop and the revision
# follows at once). The revision that takes messages in names them (``plan_revised.messages``).


class MessageReceived(Event, frozen=True, kw_only=True, tag="message_received"):
    """A message as it was sent, recorded on its goal before anything is decided about it."""

    command_id: str
    text: str


class MessageQueued(Event, frozen=True, kw_only=True, tag="message_queued"):
    """The goal's policy is ``enqueue``: the message waits for the end of ``iteration``, and
    the revision after it takes the message in."""

    command_id: str
    iteration: int
    text: str


class IterationInterrupted(Event, frozen=True, kw_only=True, tag="iteration_interrupted"):
    """The goal's policy is ``interrupt``: ``iteration`` ends now. Its open tasks (``tasks``)
    are cancelled (their running calls are told to stop) and the planner revises the plan with
    the message."""

    command_id: str
    iteration: int
    text: str
    tasks: tuple[str, ...] = ()
    reason: str = ""


class MessageRejected(Event, frozen=True, kw_only=True, tag="message_rejected"):
    """A message that cannot apply (the goal's policy is ``reject``, the goal is unknown or
    ended, no iteration is left, the command is invalid); nothing else happens. On the goal
    when it exists, else on the reserved goal id ``_intake``."""

    command_id: str
    target_goal_id: str
    reason: str


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
    # The command ids of the messages this revision takes in (message_queued or
    # iteration_interrupted before it); empty for a revision after a verdict alone.
    messages: tuple[str, ...] = ()


class TaskScheduled(Event, frozen=True, kw_only=True, tag="task_scheduled"):
    """A task ready to run, its argument references already resolved."""

    iteration: int
    task_id: str
    description: str
    tool: str
    args: dict[str, Any]
    timeout_s: float
    max_attempts: int
    allowed_tools: tuple[str, ...] = ()
    llm_budget: Budget | None = None  # what the goal may still spend when the task starts
    # A ReAct task's copy of the goal's approval policy: which of the calls its model asks for
    # wait for a person (None: none; plain tasks are checked by the planner before this).
    approval: ApprovalPolicy | None = None


class EvaluationRequested(Event, frozen=True, kw_only=True, tag="evaluation_requested"):
    """Everything the evaluator needs to judge one iteration, so its verdict is replayable."""

    iteration: int
    text: str
    expect: Expect | None
    result: str
    tasks: tuple[TaskOutcome, ...]
    llm_budget: Budget | None = None
    result_ref: OutputRef | None = None


# -- execution (executor) ----------------------------------------------------------------


class TaskStarted(Event, frozen=True, kw_only=True, tag="task_started"):
    iteration: int
    task_id: str
    tool: str
    attempt: int


class ToolCalled(Event, frozen=True, kw_only=True, tag="tool_called"):
    """An attempt calls its tool: durably recorded before it runs (a tool with side effects, a
    ReAct step), or while it runs (a plain task's tool without side effects that takes time,
    once it ran past its grace: ``CallRecord.WHILE_RUNNING``); ``occurred_at`` is when the call
    began. For a plain tool task the first attempt's ``tool_called`` is also the task's start
    (``task_started`` is written only for ReAct tasks). A plain task's call recorded by nothing
    else writes none: its outcome carries ``called_at``."""

    iteration: int
    task_id: str
    tool: str
    attempt: int
    args: dict[str, Any]
    # A ReAct task's calls: the think step (from 1) that asked for it and its position (from
    # 1) among that step's tool calls. A plain task's single tool call has step 0, call 0.
    step: int = 0
    call: int = 0


class ToolReturned(Event, frozen=True, kw_only=True, tag="tool_returned"):
    iteration: int
    task_id: str
    tool: str
    attempt: int
    output: str
    duration_ms: float
    step: int = 0
    call: int = 0
    output_ref: OutputRef | None = None
    # An MCP tool's structured content (a JSON object), beside its text in ``output``.
    structured: dict[str, Any] | None = None


class ToolFailed(Event, frozen=True, kw_only=True, tag="tool_failed"):
    iteration: int
    task_id: str
    tool: str
    attempt: int
    error: str
    transient: bool
    duration_ms: float
    step: int = 0
    call: int = 0
    # When the attempt's tool was called, set only when no tool_called recorded the call (a
    # plain task's tool without side effects): this event is then its whole record.
    called_at: datetime | None = None


class TaskCompleted(Event, frozen=True, kw_only=True, tag="task_completed"):
    """A task's result. For a plain tool task it is also the successful attempt's return
    (``tool_returned`` is written only for ReAct steps): ``attempts`` is that attempt's number,
    ``attempt_duration_ms`` its own tool time, ``duration_ms`` the sum over every attempt.
    ``attempt_duration_ms`` is None when the attempt's return is a ``tool_returned`` of its own
    (ReAct tasks, older logs): then this event only closes the task. ``called_at`` is set when
    no ``tool_called`` recorded the attempt's call (a tool without side effects):
    this event is then the call's whole record, started at ``called_at``."""

    iteration: int
    task_id: str
    tool: str
    output: str
    attempts: int
    duration_ms: float
    attempt_duration_ms: float | None = None
    # Set when the output was too large to carry: it is in the outputs store, ``output`` is
    # only its preview (events/outputs.py).
    output_ref: OutputRef | None = None
    # An MCP tool's structured content (a JSON object), beside its text in ``output``.
    structured: dict[str, Any] | None = None
    called_at: datetime | None = None


class TaskCancelled(Event, frozen=True, kw_only=True, tag="task_cancelled"):
    """The task stopped because its goal was cancelled: its running tool was interrupted, or
    it never started. ``attempts`` is the number of attempts called, ``duration_ms`` their
    tool time (the interrupted one's up to the interruption)."""

    iteration: int
    task_id: str
    tool: str
    attempts: int
    duration_ms: float
    reason: str = ""


class TimerStarted(Event, frozen=True, kw_only=True, tag="timer_started"):
    """A task's attempt waits for a durable timer (a ``sleep`` longer than the executor's
    threshold, a ``wait_until`` further away: ``purpose`` names the tool) instead of holding a
    process: nats-server wakes it at ``due_at`` (a scheduled message named by ``timer_id``,
    this event's id). Written with the attempt's ``tool_called``, before the timer is armed.
    A ReAct task's call that waits names its think ``step`` and ``call`` (from 1), as its
    ``tool_called`` does; a plain task's timer has step 0, call 0."""

    iteration: int
    task_id: str
    tool: str
    attempt: int
    timer_id: str
    due_at: datetime
    seconds: float
    purpose: str = "sleep"
    step: int = 0
    call: int = 0


class TimerFired(Event, frozen=True, kw_only=True, tag="timer_fired"):
    """The timer of ``timer_started`` woke its task (written with the task's outcome, or with
    the ``tool_returned`` of the ReAct call that waited). ``late_ms``: how long after
    ``due_at`` the wake-up was handled (a restart while the timer fell due shows here).
    ``step``, ``call``: the ReAct call that waited, as on its timer."""

    iteration: int
    task_id: str
    tool: str
    attempt: int
    timer_id: str
    due_at: datetime
    late_ms: float
    step: int = 0
    call: int = 0


class TaskFailed(Event, frozen=True, kw_only=True, tag="task_failed"):
    iteration: int
    task_id: str
    tool: str
    error: str
    attempts: int
    duration_ms: float
    # False: the last error was permanent (a bad argument, a refused path): running the same
    # task again cannot succeed. Older events carry no flag and read as transient.
    transient: bool = True


# -- ReAct refusals (executor) -----------------------------------------------------------


class ToolRefused(Event, frozen=True, kw_only=True, tag="tool_refused"):
    """A ReAct step's tool call that was never run: the tool was not granted to the task, or
    its arguments were invalid. The refusal is the observation the model gets back."""

    iteration: int
    task_id: str
    tool: str  # the name the model asked for, granted or not
    step: int
    call: int
    args: dict[str, Any]
    reason: str


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
    # Why the model stopped (``stop``, ``tool_calls``, ``end_turn``…; empty in older events).
    finish_reason: str = ""
    # The model the answering endpoint was asked for; ``model`` is the one that answered.
    request_model: str = ""


# -- the platform itself ----------------------------------------------------------------


class LeaseAcquired(Event, frozen=True, kw_only=True, tag="lease_acquired"):
    """A replica became the active writer of ``service`` (goal id ``_<service>``).

    Every later write of that service is fenced on this event's stream sequence, so a replica
    that lost the lease (paused, partitioned) can no longer append anything.
    """

    service: str
    holder: str
    previous_holder: str = ""


class ListedTool(msgspec.Struct, frozen=True, kw_only=True):
    """One tool of an MCP server's listing: its agora name (``<server>.<tool>``) and schema."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = {}
    timeout_s: float = 30.0


class ToolsListed(Event, frozen=True, kw_only=True, tag="tools_listed"):
    """The executor's view of one MCP server's tools, or of a remote A2A agent's one tool
    (goal id ``_mcp_<server>``; ``origin`` says which: ``mcp:…``, ``a2a:…``), recorded
    when it first lists them and whenever the set changes. Planners validate and plan with
    the latest listing of every server; ``agora tools`` shows them. ``problem``: the server
    could not be reached or listed (then ``tools`` is empty)."""

    server: str
    origin: str
    transport: str
    where: str
    trusted: bool = False
    protocol_version: str | None = None
    tools: tuple[ListedTool, ...] = ()
    skipped: tuple[str, ...] = ()
    problem: str | None = None


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
    | ToolRefused
    | MemoryForgotten
    | MemoryCompacted
    | LeaseAcquired
    | CancelRequested
    | PauseRequested
    | ResumeRequested
    | GoalCancelled
    | GoalPaused
    | GoalResumed
    | CommandRejected
    | TaskCancelled
    | ToolsListed
    | ApprovalRequested
    | ApprovalAnswered
    | ApprovalGranted
    | ApprovalDenied
    | ApprovalRejected
    | TimerStarted
    | TimerFired
    | GoalQueued
    | GoalDequeued
    | MessageReceived
    | MessageQueued
    | IterationInterrupted
    | MessageRejected
)

EVENT_TYPES: dict[str, type[Event]] = {
    str(cls.__struct_config__.tag): cls for cls in AnyEvent.__args__
}
