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

A call of ``sleep`` or ``wait_until`` that would wait longer than the timers' threshold
(``ReactConfig.timer_threshold_s``, as a plain task's would: ``waits.durable_call_wait``) runs
nothing in process either: the task records ``tool_called`` and ``timer_started`` (with the
call's ``step`` and ``call``), the timer is armed and the task stops, holding nothing. The
timer's wake-up records ``timer_fired`` and the call's ``tool_returned`` (the tool's normal
result, services/executor/react_waits.py), and the executor resumes the task from its record,
as after an approval's answer.

:func:`next_react_action` is a pure function of the task, the turns so far and the task's
recorded events (``react_record``); the think requests it asks for are built by
``react_request``, the events it records by ``react_events``. The adapter
(``react_handler.py``) performs the action and asks again, so a redelivered task replays its
thinks from the goal's recorded answers (no model call), reuses recorded tool outcomes, and
counts a call that was announced but never returned as failed: a tool runs at most once per
call, as plain tasks run at most once per attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from events.approval_commands import approval_id
from events.approvals import approval_reason
from events.catalog import (
    ApprovalRequested,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerStarted,
    ToolCalled,
)
from events.errors import ToolError
from events.model import Budget, Event, Stamp
from events.tools import ReactArgs, ToolSpec, argument_problems
from services.executor import decide, waits
from services.executor.react_events import (
    call_key,
    react_called,
    react_completed,
    react_failed,
    react_refused,
    react_tool_failed,
)
from services.executor.react_record import Observation, ReactRecord, Spend, Turn
from services.executor.react_request import (
    ReactConfig,
    build_request,
    granted_tools,
)
from services.llm.messages import LlmRequest

__all__ = [
    "BUDGET_EXCEEDED",
    "AlreadyFinished",
    "AskApproval",
    "AwaitApproval",
    "AwaitTimer",
    "CallTool",
    "Finish",
    "Observe",
    "ReactAction",
    "Think",
    "WaitDurably",
    "next_react_action",
]

# The prefix of a task_failed error when the goal's LLM budget ran out (the planner maps it
# to goal_failed with reason budget_exceeded).
BUDGET_EXCEEDED = "budget_exceeded"


# -- what to do next ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlreadyFinished:
    """task_completed, task_failed or task_cancelled is recorded: nothing to do."""


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
class WaitDurably:
    """Publish ``announce`` and ``timer`` (durably), arm the timer and stop: the call waits on
    it, and the task holds nothing until its wake-up resumes it."""

    announce: ToolCalled
    timer: TimerStarted


@dataclass(frozen=True, slots=True)
class AwaitTimer:
    """The next call waits on its recorded durable timer, not woken yet: arm it again
    (harmless if it is armed; a crash may have come between recording and arming) and stop."""

    timer: TimerStarted


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


ReactAction = (
    AlreadyFinished
    | Think
    | CallTool
    | AskApproval
    | AwaitApproval
    | WaitDurably
    | AwaitTimer
    | Observe
    | Finish
)


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
    timer = record.timers.get(key)
    if timer is not None:
        # Announced and waiting on its timer: not an interrupted call.
        return AwaitTimer(timer)
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
        return Observe(react_refused(task, turn, number, reason, stamp), publish=True)
    return _checked_call(task, turn, number, record, config=config, stamp=stamp)


def _checked_call(
    task: TaskScheduled,
    turn: Turn,
    number: int,
    record: ReactRecord,
    *,
    config: ReactConfig,
    stamp: Stamp,
) -> ReactAction:
    """Granted call ``number`` of ``turn``: refused if its arguments do not fit the tool; if the
    goal's approval policy names it, asked about, waiting, then run as approved; else run (or,
    a long wait, left to a durable timer)."""
    call = turn.reply.tool_calls[number - 1]
    spec = config.tools[call.name]
    key = (turn.step, number)
    args = _validated(spec, call.name, call.arguments)
    if isinstance(args, str):
        return Observe(react_refused(task, turn, number, args, stamp), publish=True)
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
            return Observe(react_refused(task, turn, number, args, stamp), publish=True)
    announce = react_called(
        task, step=turn.step, call=number, tool=call.name, args=args, stamp=stamp
    )
    wait = _durable_wait(call.name, args, config, stamp)
    if wait is not None:
        timer = waits.call_timer(
            task, step=turn.step, call=number, tool=call.name, wait=wait, stamp=stamp
        )
        return WaitDurably(announce=announce, timer=timer)
    return CallTool(step=turn.step, call=number, tool=call.name, args=args, announce=announce)


def _durable_wait(
    tool: str, args: dict[str, Any], config: ReactConfig, stamp: Stamp
) -> waits.DurableWait | None:
    """The durable timer the call waits on instead of running, if it is a long enough wait.
    The task's timeout bounds each call that runs; a timer runs nothing, so it does not bound
    a sleep the model asked for (``sleep`` itself allows an hour at most)."""
    threshold_s = config.timer_threshold_s
    if threshold_s is None:
        return None
    return waits.durable_call_wait(tool, args, None, threshold_s, stamp.occurred_at)


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
        **stamp.envelope("approval_requested", *call_key(task, turn.step, number)),
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


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)
