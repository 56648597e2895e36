"""Re-run of the executor: every recorded ``task_scheduled`` through the current executor code.

Tools are not run again: a tool call is answered from the record (the recorded output: the
``task_completed`` of a plain task's attempt, a ReAct step's ``tool_returned``; or the recorded
``tool_failed`` error), in the order the task
recorded them. A call the record does not hold (another tool, other arguments, one call more)
is a difference, and that task is not compared further. A ReAct task's thinks are answered
from the recorded ``llm_responded`` events by request hash, like every re-run. A call of a
ReAct task that waited for approval is answered by the person's recorded answer
(``approval_granted`` / ``approval_denied``): the current code asks, is answered, and resumes
the task from what it decided so far, as the live executor does. A call that waited on a
durable timer is woken when due by the current code and the task resumed likewise. Timings
(``duration_ms``) are measurements, not decisions, and are not compared.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, NoReturn

from events.calls import implied_call
from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    LlmRequested,
    LlmResponded,
    TaskCancelled,
    TaskCompleted,
    TaskScheduled,
    TimerStarted,
    ToolCalled,
    ToolFailed,
    ToolReturned,
)
from events.errors import LlmNotRecordedError, ToolError
from events.model import Event
from events.tools import REACT_TOOL, CallRecord, ToolSpec
from services.executor import decide
from services.executor.handler import execute_task, wake_task
from services.executor.react_handler import execute_react
from services.executor.react_request import ReactConfig
from services.executor.runner import ToolRunner, grant_refusal
from services.executor.tools.context import ToolResult
from services.llm.messages import LlmReply, LlmRequest, request_hash
from services.rerun.common import (
    Difference,
    RerunOptions,
    RerunReport,
    compare,
    service_of,
    short,
)

__all__ = ["rerun_executor"]

# How a recorded call ended. A plain task's successful call has no tool_returned of its own:
# its task_completed (of the same attempt) is its return.
CallOutcome = ToolReturned | ToolFailed | TaskCompleted


class _UnrecordedError(ToolError):
    """The current code makes a tool call the record cannot answer."""


class _RecordedTools(ToolRunner):
    """A tool runner that answers from one task's recorded calls, in order; runs nothing."""

    def __init__(
        self, calls: Sequence[tuple[ToolCalled, CallOutcome]], tools: Mapping[str, ToolSpec]
    ) -> None:
        # Deliberately not ToolRunner.__init__: no registry, no workspace, no HTTP client.
        self._calls = deque(calls)
        # Never used: a call is answered at once, recorded as the record says (call_record).
        self.announce_after_s = 0.0
        self._tools = tools
        self.unrecorded: list[str] = []

    def permits(self, tool: str, granted: tuple[str, ...]) -> str | None:
        # The same judgement as the live executor's, on the tools re-run knows.
        return grant_refusal(self._tools.get(tool), tool, granted)

    def is_instant(self, tool: str) -> bool:
        del tool
        return True  # answered from the record at once: nothing waits, nothing to watch

    def call_record(self, tool: str) -> CallRecord:
        # As the live executor records it, by the tool's declaration; a call recorded while it
        # ran has a tool_called only if it ran past the grace, and the record says whether.
        spec = self._tools.get(tool)
        declared = CallRecord.BEFORE_RUN if spec is None else spec.call_record
        if declared is not CallRecord.WHILE_RUNNING or not self._calls:
            return declared
        _, outcome = self._calls[0]
        if isinstance(outcome, ToolReturned) or outcome.called_at is None:
            return CallRecord.BEFORE_RUN
        return CallRecord.BY_OUTCOME

    async def invoke(self, tool: str, args: dict[str, Any], timeout_s: float) -> ToolResult:
        del timeout_s
        if not self._calls:
            return self._refuse(f"{tool} {short(args)}: one call more than recorded")
        called, outcome = self._calls.popleft()
        if (called.tool, called.args) != (tool, args):
            return self._refuse(
                f"{tool} {short(args)} where the record has {called.tool} {short(called.args)}"
            )
        if isinstance(outcome, ToolFailed):
            raise ToolError(outcome.error, transient=outcome.transient)
        return ToolResult(outcome.output, outcome.structured)

    def _refuse(self, what: str) -> NoReturn:
        self.unrecorded.append(what)
        raise _UnrecordedError(f"re-run: the record holds no answer to {what}")


@dataclass
class _RecordedModel:
    """The port a ReAct task's thinks get: a request the record lacks is refused or, with a
    live port, asked."""

    options: RerunOptions
    calls: int = 0
    new: list[LlmRequest] = field(default_factory=list)

    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:
        self.new.append(request)
        if self.options.port is None:
            raise LlmNotRecordedError(f"no recorded answer for this {request.purpose!r} request")
        self.calls += 1
        return await self.options.port.complete(request, goal_id=goal_id)


@dataclass(frozen=True, slots=True)
class _Answers:
    """The goal's recorded model answers, as a ReAct task's redelivery would read them."""

    answers: list[Event]

    async def load(self, goal_id: str) -> list[Event]:
        del goal_id
        return self.answers


class _NoLog:
    """A first delivery never reads the log, and re-run is the only writer: never asked."""

    async def load(self, goal_id: str) -> _Recorded:
        raise AssertionError(f"re-run of {goal_id} read the goal log on a first delivery")

    async def since(self, goal_id: str, after_seq: int) -> _Recorded:
        raise AssertionError(f"re-run of {goal_id} lost a write race after {after_seq}")


@dataclass(frozen=True, slots=True)
class _Recorded:
    events: list[Event]
    last_seq: int


@dataclass(frozen=True, slots=True)
class _TaskLog:
    """What a timer's wake-up reads: the task and what the re-run decided for it."""

    events: list[Event]

    async def load(self, goal_id: str) -> _Recorded:
        del goal_id
        return _Recorded(self.events, 0)

    async def since(self, goal_id: str, after_seq: int) -> _Recorded:
        raise AssertionError(f"re-run of {goal_id} lost a write race after {after_seq}")


@dataclass
class _RecordedTimers:
    """Durable timers as the record has them: a task waits on one exactly when it did (the
    threshold is a setting, not in the log), and the timer is kept, not stored."""

    threshold_s: float
    armed: list[TimerStarted] = field(default_factory=list)

    async def arm(self, timer: TimerStarted, *, copy: str = "") -> None:
        del copy  # one copy per arming is all a re-run records
        self.armed.append(timer)

    async def wake_now(self, timer: TimerStarted) -> None:
        del timer  # a re-run hears no cancellation


def _at(when: datetime) -> datetime:
    return when


def _of_task(history: Sequence[Event], task: TaskScheduled, kind: type[Event]) -> Event | None:
    key = (task.iteration, task.task_id)
    return next(
        (
            e
            for e in history
            if isinstance(e, kind)
            and (getattr(e, "iteration", None), getattr(e, "task_id", None)) == key
        ),
        None,
    )


@dataclass(frozen=True, slots=True)
class _Appended:
    """What re-run answers for each event the current code "publishes": a fresh sequence."""

    seq: int
    duplicate: bool = False


@dataclass
class _Collector:
    """The re-run code's publish: collects its decisions; nothing reaches the stream."""

    decided: list[Event] = field(default_factory=list)
    seq: int = 0

    async def __call__(
        self, events: Sequence[Event], *, expected_last_seq: int = 0
    ) -> list[_Appended]:
        del expected_last_seq  # re-run is the only writer of its imagined log
        self.decided.extend(e for e in events if not isinstance(e, LlmRequested | LlmResponded))
        appended = [_Appended(self.seq + n) for n in range(1, len(events) + 1)]
        self.seq += len(events)
        return appended

    async def steps(self, events: Sequence[Event]) -> None:
        await self(events)


async def _rerun_react(
    task: TaskScheduled,
    history: Sequence[Event],
    *,
    answers: _Answers,
    options: RerunOptions,
    tools: _RecordedTools,
    model: _RecordedModel,
    collector: _Collector,
    now: datetime,
) -> None:
    """Re-run one ReAct task; each time it stops at an approval request the record answered,
    or at a call's durable timer, resume it from what it decided so far with that answer or
    that timer's wake-up, as the executor does live."""
    assert options.react_prompt is not None
    recorded = _task_events(history, task)
    waited = [e for e in recorded if isinstance(e, TimerStarted) and e.step]
    # A call waits on a timer exactly when one did (the threshold is a setting, not in the
    # log), decided at the time the first one was: how long a wait_until waits depends on it.
    timers = _RecordedTimers(0.0 if waited else math.inf)
    clock = waited[0].occurred_at if waited else now
    config = ReactConfig(
        tools=options.react_tools,
        prompt=options.react_prompt,
        max_steps=options.react_max_steps,
        timer_threshold_s=timers.threshold_s,
    )
    answered = {
        e.approval_id: e
        for e in recorded
        if isinstance(e, ApprovalGranted | ApprovalDenied) and e.step
    }
    given: list[Event] = []
    woken: set[str] = set()
    # What the wake-ups read besides the task's events: the cancel (or interruption) that
    # ended it, when one did (re-run hears none while a task runs).
    stop = decide.stop_of(history, task.iteration)
    stops = (
        [stop] if stop is not None and any(isinstance(e, TaskCancelled) for e in recorded) else []
    )
    while True:
        decided = _task_events(collector.decided, task)
        await execute_react(
            task,
            # "Redelivered": the thinks are read from the record; the task's own steps
            # are not in ``answers``, so the current code decides every one of them anew.
            redelivered=True,
            config=config,
            runner=tools,
            llm=model,
            log=_Answers([*answers.answers, *decided, *given]),
            publish=collector.steps,
            now=partial(_at, clock),
            producer=options.producer,
            timers=timers,
        )
        if model.new:
            return
        if timers.armed:
            timer = timers.armed.pop(0)
            if timer.timer_id in woken:
                return  # woken once already and still waiting: nothing more to decide
            woken.add(timer.timer_id)
            await wake_task(
                task.goal_id,
                timer.timer_id,
                log=_TaskLog([task, *_task_events(collector.decided, task), *stops]),
                publish=collector,
                timers=timers,
                now=partial(_at, timer.due_at),
                producer=options.producer,
                runner=tools,
            )
            continue
        asked = [
            e for e in _task_events(collector.decided, task) if isinstance(e, ApprovalRequested)
        ]
        answer = answered.pop(asked[-1].approval_id, None) if asked else None
        if answer is None:
            return
        given.append(answer)


def _task_events(events: Sequence[Event], task: TaskScheduled) -> list[Event]:
    return [
        e
        for e in events
        if getattr(e, "task_id", None) == task.task_id
        and getattr(e, "iteration", None) == task.iteration
    ]


def _recorded_calls(
    history: Sequence[Event], task: TaskScheduled
) -> list[tuple[ToolCalled, CallOutcome]]:
    """The task's tool calls that have an outcome, in stream order (a call only its outcome
    records, as the tool_called it stands for)."""
    mine = _task_events(history, task)
    calls = [
        call
        for e in mine
        if (call := e if isinstance(e, ToolCalled) else _implied(e, task)) is not None
    ]
    pairs: list[tuple[ToolCalled, CallOutcome]] = []
    for called in calls:
        outcome: CallOutcome | None = next(
            (
                e
                for e in mine
                if isinstance(e, ToolReturned | ToolFailed)
                and (e.attempt, e.step, e.call) == (called.attempt, called.step, called.call)
            ),
            None,
        )
        if outcome is None and (called.step, called.call) == (0, 0):
            outcome = next(
                (e for e in mine if isinstance(e, TaskCompleted) and e.attempts == called.attempt),
                None,
            )
        if outcome is not None:
            pairs.append((called, outcome))
    return pairs


def _implied(event: Event, task: TaskScheduled) -> ToolCalled | None:
    return implied_call(event, task) if isinstance(event, TaskCompleted | ToolFailed) else None


def _new_request(request: LlmRequest) -> Difference:
    return Difference(
        "llm_request_new",
        request_hash(request),
        "llm_requested",
        f"the current code asks a {request.purpose!r} request the recorded goal never asked: "
        f"{short(request.messages[-1].content[:120] if request.messages else '')}",
    )


async def rerun_executor(
    history: Sequence[Event], options: RerunOptions, now: datetime
) -> RerunReport:
    """Re-run the executor over ``history`` (one goal's events, in stream order)."""
    assert options.react_prompt is not None or not any(
        isinstance(e, TaskScheduled) and e.tool == REACT_TOOL for e in history
    ), "rerunning ReAct tasks needs the ReAct prompt"
    answers = _Answers([e for e in history if isinstance(e, LlmResponded)])
    model = _RecordedModel(options)
    collector = _Collector()
    decided = collector.decided
    differences: list[Difference] = []
    unknown: set[tuple[int, str]] = set()  # tasks whose run left the record
    tasks = [e for e in history if isinstance(e, TaskScheduled)]

    async def no_wait(_: float) -> None:
        return None

    for task in tasks:
        tools = _RecordedTools(_recorded_calls(history, task), options.react_tools)
        if task.tool == REACT_TOOL:
            await _rerun_react(
                task,
                history,
                answers=answers,
                options=options,
                tools=tools,
                model=model,
                collector=collector,
                now=now,
            )
        else:
            waited = _of_task(history, task, TimerStarted) is not None
            timers = _RecordedTimers(0.0 if waited else math.inf)
            # Decided at the time it was: how long a wait_until waits depends on it.
            first_call = _of_task(history, task, ToolCalled)
            await execute_task(
                task,
                task_seq=collector.seq,
                redelivered=False,  # a first delivery reads no log
                runner=tools,
                log=_NoLog(),
                publish=collector,
                now=partial(_at, now if first_call is None else first_call.occurred_at),
                producer=options.producer,
                timers=timers,
                backoff=options.backoff,
                sleep=no_wait,
            )
            while timers.armed:
                # Woken when due by the current code (when it fired is a measurement); a
                # backoff's wake-up runs the next attempt, which may arm the next backoff.
                timer = timers.armed.pop(0)
                mine = [e for e in collector.decided if _of_task([e], task, type(e))]
                await wake_task(
                    task.goal_id,
                    timer.timer_id,
                    log=_TaskLog([task, *mine]),
                    publish=collector,
                    timers=timers,
                    now=partial(_at, timer.due_at),
                    producer=options.producer,
                    runner=tools,
                    backoff=options.backoff,
                    sleep=no_wait,
                )
        differences += [_new_request(request) for request in model.new]
        differences += [
            Difference("tool_call_new", task.event_id, "tool_called", what)
            for what in tools.unrecorded
        ]
        if model.new or tools.unrecorded:
            unknown.add((task.iteration, task.task_id))
        model.new.clear()

    def comparable(event: Event) -> bool:
        key = (getattr(event, "iteration", None), getattr(event, "task_id", None))
        return key not in unknown

    recorded = [
        e
        for e in history
        if service_of(e) == "executor"
        and not isinstance(e, LlmRequested | LlmResponded)
        and comparable(e)
    ]
    differences += compare(recorded, [e for e in decided if comparable(e)])
    return RerunReport(
        goal_id=history[0].goal_id if history else "",
        service="executor",
        inputs=len(tasks),
        recorded=len(recorded),
        rerun_decisions=len(decided),
        # The recorded thinks of the tasks compared in full: each answered from the record.
        llm_answers_reused=sum(
            1 for e in history if isinstance(e, LlmRequested) and service_of(e) == "executor"
        )
        if not unknown
        else 0,
        llm_calls=model.calls,
        differences=tuple(differences),
        stopped_early=bool(unknown),
    )
