"""ReAct tasks: think -> call a tool -> observe, each step decided purely from the record.

A task with ``tool == "react"`` (args ``{"instruction": ...}``) is open-ended. The executor
asks the model what to do (a *think*, one recorded ``llm_requested`` / ``llm_responded``
pair), runs the tool calls it asked for (``tool_called`` then ``tool_returned`` /
``tool_failed``, or ``tool_refused``), shows it the results and asks again, up to
``max_steps`` thinks. An answer without tool calls completes the task.

Injection safety is decided here, not trusted to the model:

- The tools a task may call are ``allowed_tools``, fixed when the plan was made. A call to
  any other tool (``react`` itself included), or with arguments its schema refuses, becomes a
  ``tool_refused`` observation and never runs. Nothing a tool returns can widen the grant,
  change the instruction or emit an event other than this task's step events.
- Tool output reaches the model only as the JSON-quoted content of a ``role="tool"`` message
  answering the call that produced it, never as instructions.

A call the goal's approval policy names (``task.approval``, the policy the goal was admitted
under) does not run until a person approves it: the task records ``approval_requested`` and
stops, holding nothing. The planner records the answer (``approval_granted`` with the
arguments to run, possibly edited, or ``approval_denied``); the executor then resumes the task
from its record. The model's earlier thinks are answered from the log, the approved call runs
once, and a denial is the model's observation of that call.

:func:`next_react_action` is a pure function of the task, the turns so far and the task's
recorded events. The adapter (``react_handler.py``) performs the action and asks again, so a
redelivered task replays its thinks from the goal's recorded answers (no model call), reuses
recorded tool outcomes, and counts a call that was announced but never returned as failed:
a tool runs at most once per call, as plain tasks run at most once per attempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import msgspec
from pydantic import ValidationError

from events.approval_commands import approval_id
from events.approvals import approval_reason
from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    ToolCalled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
)
from events.errors import ToolError
from events.model import Budget, Event, Stamp
from events.tools import REACT_TOOL, ReactArgs, ToolSpec, argument_problems
from services.executor import decide
from services.llm.messages import ChatMessage, LlmReply, LlmRequest, ToolCall, ToolDefinition
from services.llm.templates import PromptTemplate

__all__ = [
    "BUDGET_EXCEEDED",
    "REACT_ATTEMPT",
    "AlreadyFinished",
    "AskApproval",
    "AwaitApproval",
    "CallTool",
    "Finish",
    "Observation",
    "Observe",
    "ReactAction",
    "ReactConfig",
    "ReactRecord",
    "Spend",
    "Think",
    "Turn",
    "build_request",
    "fold_react",
    "granted_tools",
    "next_react_action",
    "observation_message",
    "react_called",
    "react_completed",
    "react_failed",
    "react_returned",
    "react_tool_failed",
]

# A ReAct task is one attempt: a failing tool is an observation for the model, not a retry.
REACT_ATTEMPT = 1
# The prefix of a task_failed error when the goal's LLM budget ran out (the planner maps it
# to goal_failed with reason budget_exceeded).
BUDGET_EXCEEDED = "budget_exceeded"

# What the model is shown about one call: its outcome, its refusal, or a person's denial.
Observation = ToolReturned | ToolFailed | ToolRefused | ApprovalDenied


@dataclass(frozen=True, slots=True)
class ReactConfig:
    """What ReAct decisions need besides the record: the registry's tool specs (names,
    descriptions, argument schemas), the prompt template and the step limit."""

    tools: Mapping[str, ToolSpec]
    prompt: PromptTemplate
    max_steps: int = 8


@dataclass(frozen=True, slots=True)
class Turn:
    """One think: the model's reply and the observations of the calls it asked for so far."""

    step: int
    reply: LlmReply
    observations: tuple[Observation, ...] = ()

    @property
    def pending(self) -> bool:
        return len(self.observations) < len(self.reply.tool_calls)

    def observed(self, observation: Observation) -> Turn:
        return replace(self, observations=(*self.observations, observation))


@dataclass(frozen=True, slots=True)
class Spend:
    tokens: int = 0
    cost_usd: float = 0.0

    @classmethod
    def of(cls, turns: Iterable[Turn]) -> Spend:
        replies = [turn.reply for turn in turns]
        return cls(
            tokens=sum(r.tokens_in + r.tokens_out for r in replies),
            cost_usd=sum(r.cost_usd for r in replies),
        )


# -- the record of one ReAct task --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReactRecord:
    started: bool = False
    finished: bool = False
    called: frozenset[tuple[int, int]] = frozenset()  # (step, call) announced by tool_called
    outcomes: Mapping[tuple[int, int], Observation] = field(default_factory=dict)
    asked: frozenset[tuple[int, int]] = frozenset()  # (step, call) whose approval was requested
    granted: Mapping[tuple[int, int], ApprovalGranted] = field(default_factory=dict)


def fold_react(events: Iterable[Event], iteration: int, task_id: str) -> ReactRecord:
    """What the log holds about ReAct task ``task_id`` of ``iteration``, in stream order."""
    started = finished = False
    called: set[tuple[int, int]] = set()
    outcomes: dict[tuple[int, int], Observation] = {}
    asked: set[tuple[int, int]] = set()
    granted: dict[tuple[int, int], ApprovalGranted] = {}
    for event in events:
        if getattr(event, "iteration", None) != iteration:
            continue
        if getattr(event, "task_id", None) != task_id:
            continue
        match event:
            case TaskStarted():
                started = True
            case TaskCompleted() | TaskFailed():
                finished = True
            case ToolCalled(step=step, call=call) if step > 0:
                called.add((step, call))
            case ToolReturned() | ToolFailed() | ToolRefused() | ApprovalDenied() if event.step:
                outcomes.setdefault((event.step, event.call), event)
            case ApprovalRequested(step=step, call=call) if step > 0:
                asked.add((step, call))
            case ApprovalGranted(step=step, call=call) if step > 0:
                granted.setdefault((step, call), event)
    return ReactRecord(
        started=started,
        finished=finished,
        called=frozenset(called),
        outcomes=outcomes,
        asked=frozenset(asked),
        granted=granted,
    )


# -- what to do next ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlreadyFinished:
    """task_completed or task_failed is recorded: nothing to do."""


@dataclass(frozen=True, slots=True)
class Think:
    """Ask the model (through ``recorded_call``) for step ``step``."""

    step: int
    request: LlmRequest


@dataclass(frozen=True, slots=True)
class CallTool:
    """Publish ``announce`` (durably), then run the granted tool with validated ``args``."""

    step: int
    call: int
    tool: str
    args: dict[str, Any]
    announce: ToolCalled


@dataclass(frozen=True, slots=True)
class AskApproval:
    """Publish ``request`` (durably) and stop: the call waits for a person, and the task holds
    nothing until the answer resumes it."""

    request: ApprovalRequested


@dataclass(frozen=True, slots=True)
class AwaitApproval:
    """The next call's approval is requested and not answered yet: stop, holding nothing."""

    approval_id: str


@dataclass(frozen=True, slots=True)
class Observe:
    """The next call's observation is known without running anything: recorded already
    (``publish`` False), or a refusal / an interrupted call to record now (``publish`` True)."""

    observation: Observation
    publish: bool


@dataclass(frozen=True, slots=True)
class Finish:
    """Publish ``events`` (task_completed or task_failed): the task is done."""

    events: tuple[Event, ...]


ReactAction = AlreadyFinished | Think | CallTool | AskApproval | AwaitApproval | Observe | Finish


def next_react_action(
    task: TaskScheduled,
    turns: tuple[Turn, ...],
    record: ReactRecord,
    config: ReactConfig,
    stamp: Stamp,
) -> ReactAction:
    """The next thing a ReAct task has to do, given its turns so far and its record."""
    if record.finished:
        return AlreadyFinished()
    try:
        args = ReactArgs.model_validate(task.args)
    except ValidationError as exc:
        error = f"invalid arguments for tool 'react': {_describe(exc)}"
        return Finish((react_failed(task, error, turns, stamp),))
    spent = Spend.of(turns)
    overrun = _budget_overrun(task.llm_budget, spent)
    if overrun is not None:
        return Finish((react_failed(task, overrun, turns, stamp),))
    if turns and turns[-1].pending:
        return _next_call(task, turns[-1], record, config, stamp)
    outcome = _outcome(task, turns, spent, config, stamp)
    if outcome is not None:
        return Finish((outcome,))
    remaining = _remaining_tokens(task.llm_budget, spent)
    request = build_request(
        task, args.instruction, turns, config, max_tokens=remaining, approved=record.granted
    )
    return Think(step=len(turns) + 1, request=request)


def _outcome(
    task: TaskScheduled, turns: tuple[Turn, ...], spent: Spend, config: ReactConfig, stamp: Stamp
) -> TaskCompleted | TaskFailed | None:
    """How the task ends once every call of the last turn is observed, if it ends now."""
    error: str | None
    if turns and not turns[-1].reply.tool_calls:
        answer = turns[-1].reply.content
        if answer.strip():
            return react_completed(task, answer, turns, stamp)
        error = f"the model ended step {turns[-1].step} with neither a tool call nor an answer"
    elif len(turns) >= config.max_steps:
        error = (
            f"react step limit reached: {config.max_steps} steps without a final answer "
            "(AGORA_REACT_MAX_STEPS)"
        )
    else:
        error = _budget_exhausted(task.llm_budget, spent)
    return None if error is None else react_failed(task, error, turns, stamp)


def _next_call(
    task: TaskScheduled, turn: Turn, record: ReactRecord, config: ReactConfig, stamp: Stamp
) -> ReactAction:
    index = len(turn.observations)
    number = index + 1
    call = turn.reply.tool_calls[index]
    key = (turn.step, number)
    recorded = record.outcomes.get(key)
    if recorded is not None:
        return Observe(recorded, publish=False)
    if key in record.called:
        # Announced but never answered: the tool may have acted, so it is not run again.
        interrupted = ToolError(decide.INTERRUPTED_ERROR, transient=True)
        failure = react_tool_failed(
            task, step=turn.step, call=number, tool=call.name, error=interrupted, stamp=stamp
        )
        return Observe(failure, publish=True)
    granted = granted_tools(task, config)
    if call.name not in granted:
        listed = ", ".join(granted) or "none"
        reason = (
            f"tool {call.name!r} not granted to this task (granted: {listed}); the call was not run"
        )
        return Observe(_refused(task, turn, number, reason, stamp), publish=True)
    return _checked_call(task, turn, number, record, spec=config.tools[call.name], stamp=stamp)


def _checked_call(
    task: TaskScheduled,
    turn: Turn,
    number: int,
    record: ReactRecord,
    *,
    spec: ToolSpec,
    stamp: Stamp,
) -> ReactAction:
    """Granted call ``number`` of ``turn``: refused if its arguments do not fit the tool; if the
    goal's approval policy names it, asked about, waiting, then run as approved; else run."""
    call = turn.reply.tool_calls[number - 1]
    key = (turn.step, number)
    args = _validated(spec, call.name, call.arguments)
    if isinstance(args, str):
        return Observe(_refused(task, turn, number, args, stamp), publish=True)
    why = approval_reason(task.approval, call.name, args, spec)
    if why is not None:
        if key not in record.asked:
            return AskApproval(
                _approval_request(task, turn, number, args=args, why=why, stamp=stamp)
            )
        answer = record.granted.get(key)
        if answer is None:
            return AwaitApproval(_approval_id(task, turn.step, number))
        # It runs with the arguments the person approved (their edit, if any).
        args = _validated(spec, call.name, answer.args)
        if isinstance(args, str):
            return Observe(_refused(task, turn, number, args, stamp), publish=True)
    return CallTool(
        step=turn.step,
        call=number,
        tool=call.name,
        args=args,
        announce=react_called(
            task, step=turn.step, call=number, tool=call.name, args=args, stamp=stamp
        ),
    )


def _validated(spec: ToolSpec, name: str, arguments: Mapping[str, Any]) -> dict[str, Any] | str:
    """``arguments`` as the tool takes them, or why its schema refuses them."""
    if spec.args is not None:
        try:
            return spec.args.model_validate(arguments).model_dump(mode="json")
        except ValidationError as exc:
            return f"invalid arguments for tool {name!r}: {_describe(exc)}; the call was not run"
    problems = argument_problems(spec, arguments)
    if problems:
        described = "; ".join(f"{where or 'arguments'}: {what}" for where, what in problems)
        return f"invalid arguments for tool {name!r}: {described}; the call was not run"
    return dict(arguments)


def _approval_id(task: TaskScheduled, step: int, call: int) -> str:
    return approval_id(task.goal_id, task.iteration, task.task_id, step, call)


def _approval_request(
    task: TaskScheduled, turn: Turn, number: int, *, args: dict[str, Any], why: str, stamp: Stamp
) -> ApprovalRequested:
    policy = task.approval
    assert policy is not None  # only a policy names a call
    return ApprovalRequested(
        **stamp.envelope("approval_requested", *_key(task, turn.step, number)),
        approval_id=_approval_id(task, turn.step, number),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=turn.reply.tool_calls[number - 1].name,
        args=args,
        description=task.description,
        reason=why,
        answerers=policy.answerers,
        deadline=stamp.occurred_at + timedelta(seconds=policy.deadline_s),
        step=turn.step,
        call=number,
    )


def granted_tools(task: TaskScheduled, config: ReactConfig) -> tuple[str, ...]:
    """The task's ``allowed_tools`` that exist, in plan order; never ``react`` itself."""
    granted: list[str] = []
    for name in task.allowed_tools:
        if name in config.tools and name != REACT_TOOL and name not in granted:
            granted.append(name)
    return tuple(granted)


# -- budgets -----------------------------------------------------------------------------


def _budget_overrun(budget: Budget | None, spent: Spend) -> str | None:
    """Why the thinks so far already spent more than the goal had left, if they did."""
    if budget is None:
        return None
    if budget.max_tokens is not None and spent.tokens > budget.max_tokens:
        return (
            f"{BUDGET_EXCEEDED}: the react task used {spent.tokens} LLM tokens, "
            f"the goal had {budget.max_tokens} left"
        )
    if budget.max_cost_usd is not None and spent.cost_usd > budget.max_cost_usd:
        return (
            f"{BUDGET_EXCEEDED}: the react task spent ${spent.cost_usd:.6f}, "
            f"the goal had ${budget.max_cost_usd:.6f} left"
        )
    return None


def _budget_exhausted(budget: Budget | None, spent: Spend) -> str | None:
    """Why another think cannot be afforded: nothing at all is left of a capped measure."""
    if budget is None:
        return None
    if budget.max_tokens is not None and spent.tokens >= budget.max_tokens:
        return (
            f"{BUDGET_EXCEEDED}: all {budget.max_tokens} LLM tokens the goal had left are "
            "spent and the task has no answer yet"
        )
    if budget.max_cost_usd is not None and spent.cost_usd >= budget.max_cost_usd:
        return (
            f"{BUDGET_EXCEEDED}: all ${budget.max_cost_usd:.6f} the goal had left is spent "
            "and the task has no answer yet"
        )
    return None


def _remaining_tokens(budget: Budget | None, spent: Spend) -> int | None:
    if budget is None or budget.max_tokens is None:
        return None
    return budget.max_tokens - spent.tokens


# -- the request -------------------------------------------------------------------------


def build_request(
    task: TaskScheduled,
    instruction: str,
    turns: tuple[Turn, ...],
    config: ReactConfig,
    *,
    max_tokens: int | None = None,
    approved: Mapping[tuple[int, int], ApprovalGranted] | None = None,
) -> LlmRequest:
    """The think request for the step after ``turns``: system prompt, the instruction, then
    every earlier reply and its observations as role=tool messages. ``approved``: the grants
    of calls that waited for approval, by (step, call); an edited one shows what ran."""
    granted = granted_tools(task, config)
    system = config.prompt.render(
        tools=", ".join(granted) or "none (answer directly)", max_steps=str(config.max_steps)
    )
    # The iteration makes every attempt at a task its own request: a revised plan that runs
    # the same task again gets a fresh answer, recorded under its own hash.
    heading = f"Task {task.task_id} (iteration {task.iteration}): {task.description}"
    messages = [
        ChatMessage(role="system", content=system),
        ChatMessage(role="user", content=f"{heading}\n\n{instruction}"),
    ]
    for turn in turns:
        calls = tuple(
            _with_id(call, turn.step, n) for n, call in enumerate(turn.reply.tool_calls, 1)
        )
        messages.append(ChatMessage(role="assistant", content=turn.reply.content, tool_calls=calls))
        for number, (call, observation) in enumerate(
            zip(calls, turn.observations, strict=False), 1
        ):
            grant = (approved or {}).get((turn.step, number))
            edit = grant.args if grant is not None and grant.edited else None
            messages.append(observation_message(call, observation, edited_args=edit))
    return LlmRequest(
        purpose="react",
        messages=tuple(messages),
        tools=tuple(_definition(config.tools[name]) for name in granted),
        max_tokens=max_tokens,
    )


def observation_message(
    call: ToolCall, observation: Observation, *, edited_args: dict[str, Any] | None = None
) -> ChatMessage:
    """The result of ``call`` as the model sees it: JSON-quoted data in a role=tool message,
    so nothing inside it can pose as a message, a role or a tool call. ``edited_args``: the
    arguments a person approved the call with instead of the model's (what really ran)."""
    payload: dict[str, Any]
    match observation:
        case ToolReturned(output=output):
            payload = {"tool": call.name, "status": "returned", "output": output}
        case ToolFailed(error=error):
            payload = {"tool": call.name, "status": "failed", "error": error}
        case ToolRefused(reason=reason):
            payload = {"tool": call.name, "status": "refused", "error": reason}
        case ApprovalDenied(reason=reason):
            payload = {"tool": call.name, "status": "denied", "error": f"approval denied: {reason}"}
    if edited_args is not None:
        payload["approved_args"] = edited_args
    return ChatMessage(
        role="tool", tool_call_id=call.id, content=msgspec.json.encode(payload).decode()
    )


def _with_id(call: ToolCall, step: int, number: int) -> ToolCall:
    # Some servers leave tool call ids empty; a tool message must name the call it answers.
    return (
        call
        if call.id
        else ToolCall(id=f"s{step}c{number}", name=call.name, arguments=call.arguments)
    )


def _definition(spec: ToolSpec) -> ToolDefinition:
    return ToolDefinition(
        name=spec.name, description=spec.description, parameters=spec.json_schema()
    )


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


# -- the events a ReAct task records -----------------------------------------------------


def _key(task: TaskScheduled, step: int, call: int) -> tuple[object, ...]:
    return (task.iteration, task.task_id, REACT_ATTEMPT, step, call)


def react_called(
    task: TaskScheduled, *, step: int, call: int, tool: str, args: dict[str, Any], stamp: Stamp
) -> ToolCalled:
    return ToolCalled(
        **stamp.envelope("tool_called", *_key(task, step, call)),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=tool,
        attempt=REACT_ATTEMPT,
        args=args,
        step=step,
        call=call,
    )


def react_returned(
    task: TaskScheduled,
    *,
    step: int,
    call: int,
    tool: str,
    output: str,
    duration_ms: float,
    stamp: Stamp,
    structured: dict[str, Any] | None = None,
) -> ToolReturned:
    return ToolReturned(
        **stamp.envelope("tool_returned", *_key(task, step, call)),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=tool,
        attempt=REACT_ATTEMPT,
        output=output,
        duration_ms=duration_ms,
        step=step,
        call=call,
        structured=structured,
    )


def react_tool_failed(
    task: TaskScheduled,
    *,
    step: int,
    call: int,
    tool: str,
    error: ToolError,
    stamp: Stamp,
    duration_ms: float = 0.0,
) -> ToolFailed:
    return ToolFailed(
        **stamp.envelope("tool_failed", *_key(task, step, call)),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=tool,
        attempt=REACT_ATTEMPT,
        error=str(error),
        transient=error.transient,
        duration_ms=duration_ms,
        step=step,
        call=call,
    )


def _refused(
    task: TaskScheduled, turn: Turn, number: int, reason: str, stamp: Stamp
) -> ToolRefused:
    step, call = turn.step, turn.reply.tool_calls[number - 1]
    return ToolRefused(
        **stamp.envelope("tool_refused", task.iteration, task.task_id, step, number),
        iteration=task.iteration,
        task_id=task.task_id,
        tool=call.name,
        step=step,
        call=number,
        args=call.arguments,
        reason=reason,
    )


def _duration_ms(turns: tuple[Turn, ...]) -> float:
    """Time the task spent in the model and in its tools, from the record (so a task
    finished after a redelivery reports the same duration)."""
    thinking = sum(turn.reply.latency_ms for turn in turns)
    acting = sum(
        o.duration_ms
        for turn in turns
        for o in turn.observations
        if isinstance(o, ToolReturned | ToolFailed)
    )
    return thinking + acting


def react_completed(
    task: TaskScheduled, answer: str, turns: tuple[Turn, ...], stamp: Stamp
) -> TaskCompleted:
    return decide.completed(task, answer, REACT_ATTEMPT, _duration_ms(turns), stamp)


def react_failed(
    task: TaskScheduled, error: str, turns: tuple[Turn, ...], stamp: Stamp
) -> TaskFailed:
    return decide.failed(task, error, REACT_ATTEMPT, _duration_ms(turns), stamp)
