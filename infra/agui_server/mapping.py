"""A goal's events, and its live token deltas, as one AG-UI run's events. Pure: no I/O.

:class:`RunMapper` folds what comes in, in the order it comes, into the AG-UI events a stream
sends for it; :func:`map_run` is the same fold over a whole history. What each becomes:

| agora | AG-UI |
|---|---|
| (the run begins) | ``RUN_STARTED`` |
| ``goal_accepted`` | ``STATE_SNAPSHOT`` (the goal's state), ``STEP_STARTED plan #1`` |
| ``plan_created``, ``plan_revised`` | ``STEP_FINISHED plan #N``; the plan's tasks in the state |
| ``task_scheduled`` | ``STEP_STARTED task <id> #N`` |
| ``tool_called`` | ``TOOL_CALL_START``, ``TOOL_CALL_ARGS`` (JSON), ``TOOL_CALL_END`` |
| ``tool_returned``, ``tool_failed`` | ``TOOL_CALL_RESULT`` (the output, or ``error: …``) |
| an outcome with ``called_at`` | first what its call's ``tool_called`` would have sent |
| ``tool_refused`` | the call's start, args and end, then its result ``refused: …`` |
| ``task_completed``, ``…_failed``, ``…_cancelled`` | the open call's result, ``STEP_FINISHED`` |
| ``evaluation_requested``, ``…_completed`` | ``STEP_STARTED``, ``STEP_FINISHED evaluation #N`` |
| a live token delta (``agora.live.<goal>.llm``) | ``TEXT_MESSAGE_START``, ``…_CONTENT``, ``…_END``|
| ``goal_completed`` | the result as a text message, ``RUN_FINISHED`` (result, usage) |
| ``goal_cancelled`` | ``RUN_FINISHED`` with the outcome ``cancelled`` |
| ``goal_failed``, ``goal_rejected`` | ``RUN_ERROR`` (the reason; code ``goal_failed`` …) |

A revise verdict opens the next ``plan #N+1`` step. Every change of the state after its
snapshot is a ``STATE_DELTA`` (RFC 6902). Before a run ends, every step, tool call and text
message still open is closed, so a consumer always sees them paired.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    StateDeltaEvent,
    StateSnapshotEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.core.events import RunFinishedCancelledOutcome, RunFinishedSuccessOutcome

from events.calls import implied_call
from events.catalog import (
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
    LlmResponded,
    PlanCreated,
    PlanRevised,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    ToolCalled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
)
from events.model import Event, TaskSpec
from infra.llm.chain import LiveDelta

__all__ = ["RunMapper", "json_patch", "map_run"]

# A call is told apart from its task's others by its attempt and its place in a ReAct loop.
CallKey = tuple[int, str, int, int, int]  # iteration, task id, attempt, step, call
LiveKey = tuple[str, str, str, int]  # purpose, provider, model, attempt
StateChange = Callable[[dict[str, Any]], dict[str, Any]]
# The state's status after a pause, a resume, or a flow limit's queue (docs/flow.md).
_STEERED_STATUS: dict[type[Event], str] = {GoalPaused: "paused", GoalQueued: "queued"}


def _pointer(*tokens: str) -> str:
    """An RFC 6901 JSON pointer to ``tokens``."""
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def json_patch(before: dict[str, Any], after: dict[str, Any], *path: str) -> list[dict[str, Any]]:
    """The RFC 6902 operations that turn ``before`` into ``after`` (objects compared key by
    key, anything else replaced whole)."""
    ops: list[dict[str, Any]] = [
        {"op": "remove", "path": _pointer(*path, key)} for key in before if key not in after
    ]
    for key, value in after.items():
        if key not in before:
            ops.append({"op": "add", "path": _pointer(*path, key), "value": value})
        elif isinstance(value, dict) and isinstance(before[key], dict):
            ops.extend(json_patch(before[key], value, *path, key))
        elif value != before[key]:
            ops.append({"op": "replace", "path": _pointer(*path, key), "value": value})
    return ops


def _ms(event: Event) -> int:
    return int(event.occurred_at.timestamp() * 1000)


def _args(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False, sort_keys=True)


@dataclass
class RunMapper:
    """One AG-UI run of one goal: feed it the goal's events and live deltas in the order they
    come; each call answers the AG-UI events to send for it."""

    thread_id: str
    run_id: str
    goal_id: str
    finished: bool = False
    _state: dict[str, Any] | None = None
    _steps: list[str] = field(default_factory=list)  # open, in the order they opened
    _calls: dict[CallKey, str] = field(default_factory=dict)  # open: their tool call ids
    # What each task was scheduled with: a call only its outcome records needs its arguments.
    _scheduled: dict[tuple[int, str], TaskScheduled] = field(default_factory=dict)
    _texts: dict[LiveKey, str] = field(default_factory=dict)  # open live messages
    _live_messages: int = 0
    _usage: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def started(self) -> list[BaseEvent]:
        return [
            RunStartedEvent(
                thread_id=self.thread_id, run_id=self.run_id, protocol_version=PROTOCOL_VERSION
            )
        ]

    # -- the goal's events ---------------------------------------------------------------

    def event(self, event: Event) -> list[BaseEvent]:
        """The AG-UI events for one of the goal's events (none once the run has ended)."""
        if self.finished:
            return []
        at = _ms(event)
        if isinstance(event, GoalCompleted | GoalCancelled | GoalFailed | GoalRejected):
            return self._ended(event, at)
        if isinstance(
            event,
            ToolCalled | ToolReturned | ToolFailed | ToolRefused | TaskStarted,
        ):
            return self._tool_event(event, at)
        if isinstance(event, TaskScheduled | TaskCompleted | TaskFailed | TaskCancelled):
            return self._task_event(event, at)
        return self._planning_event(event, at)

    def _planning_event(self, event: Event, at: int) -> list[BaseEvent]:
        out: list[BaseEvent] = []
        match event:
            case GoalAccepted():
                out += self._snapshot(event, at)
                out += self._open_step("plan #1", at)
            case PlanCreated() | PlanRevised():
                out += self._open_step(f"plan #{event.iteration}", at)  # when none asked
                out += self._close_step(f"plan #{event.iteration}", at)
                out += self._change(at, lambda s: _planned(s, event.iteration, event.tasks))
            case EvaluationRequested():
                out += self._open_step(f"evaluation #{event.iteration}", at)
            case EvaluationCompleted():
                out += self._close_step(f"evaluation #{event.iteration}", at)
                verdict = {"verdict": event.verdict, "score": event.score}
                out += self._change(at, lambda s: {**s, "evaluation": verdict})
                if event.verdict == "revise":
                    out += self._open_step(f"plan #{event.iteration + 1}", at)
            case GoalPaused() | GoalResumed() | GoalQueued() | GoalDequeued():
                status = _STEERED_STATUS.get(type(event), "running")
                out += self._change(at, lambda s: {**s, "status": status})
            case LlmResponded():
                tokens = self._usage.get((event.provider, event.model), (0, 0))
                self._usage[(event.provider, event.model)] = (
                    tokens[0] + event.tokens_in,
                    tokens[1] + event.tokens_out,
                )
            case _:
                pass  # memory, context and platform records say nothing a front end shows
        return out

    def _tool_event(
        self, event: ToolCalled | ToolReturned | ToolFailed | ToolRefused | TaskStarted, at: int
    ) -> list[BaseEvent]:
        match event:
            case TaskStarted():
                return self._task(at, event.task_id, event.iteration, status="running")
            case ToolCalled():
                running = self._task(at, event.task_id, event.iteration, status="running")
                return self._call(event, at) + running
            case ToolReturned():
                return self._result(_key(event), event.output, at)
            case ToolFailed():
                opened = self._implied_call(event)
                return opened + self._result(_key(event), f"error: {event.error}", at)
            case ToolRefused():
                return self._call(event, at) + self._result(
                    _key(event), f"refused: {event.reason}", at
                )

    def _task_event(
        self, event: TaskScheduled | TaskCompleted | TaskFailed | TaskCancelled, at: int
    ) -> list[BaseEvent]:
        task_id, iteration = event.task_id, event.iteration
        match event:
            case TaskScheduled():
                self._scheduled[(iteration, task_id)] = event
                opened = self._open_step(_task_step(iteration, task_id), at)
                return opened + self._task(
                    at, task_id, iteration, status="scheduled", tool=event.tool
                )
            case TaskCompleted():
                ended = self._implied_call(event)
                ended += self._end_task(iteration, task_id, event.output, at)
                return ended + self._task(
                    at, task_id, iteration, status="completed", output=event.output
                )
            case TaskFailed():
                ended = self._end_task(iteration, task_id, f"error: {event.error}", at)
                return ended + self._task(
                    at, task_id, iteration, status="failed", error=event.error
                )
            case TaskCancelled():
                ended = self._end_task(iteration, task_id, "cancelled", at)
                return ended + self._task(at, task_id, iteration, status="cancelled")

    def _ended(
        self, event: GoalCompleted | GoalCancelled | GoalFailed | GoalRejected, at: int
    ) -> list[BaseEvent]:
        """The goal's outcome: everything still open is closed, then the run ends."""
        self.finished = True
        out = self._close_all(at)
        if isinstance(event, GoalCompleted):
            if event.result:
                out += _text_message(f"{event.event_id}-result", event.result, at)
            out += self._change(at, lambda s: {**s, "status": "completed", "result": event.result})
            return [
                *out,
                RunFinishedEvent(
                    thread_id=self.thread_id,
                    run_id=self.run_id,
                    result=event.result,
                    outcome=RunFinishedSuccessOutcome(),
                    usage=self._usage_list(),
                    timestamp=at,
                ),
            ]
        if isinstance(event, GoalCancelled):
            out += self._change(at, lambda s: {**s, "status": "cancelled"})
            return [
                *out,
                RunFinishedEvent(
                    thread_id=self.thread_id,
                    run_id=self.run_id,
                    outcome=RunFinishedCancelledOutcome(),
                    usage=self._usage_list(),
                    timestamp=at,
                ),
            ]
        ended = "failed" if isinstance(event, GoalFailed) else "rejected"
        out += self._change(at, lambda s: {**s, "status": ended, "reason": event.reason})
        error = RunErrorEvent(
            message=event.reason, code=f"goal_{ended}", usage=self._usage_list(), timestamp=at
        )
        return [*out, error]

    # -- live token deltas ---------------------------------------------------------------

    def live(self, delta: LiveDelta) -> list[BaseEvent]:
        """The AG-UI events for one token delta of a model call the goal makes: each call's
        answer (each attempt's) is a text message of its own."""
        if self.finished:
            return []
        key: LiveKey = (delta.purpose, delta.provider, delta.model, delta.attempt)
        out: list[BaseEvent] = []
        if delta.seq == 0:
            # The same kind of call again is a new one; a retry (or the next provider) of a
            # call ends what its earlier attempts said.
            for open_key in [k for k in self._texts if k == key or _retried(k, key)]:
                out.append(TextMessageEndEvent(message_id=self._texts.pop(open_key)))
        if key not in self._texts:
            self._live_messages += 1
            message_id = f"{self.goal_id}-live-{self._live_messages}"
            self._texts[key] = message_id
            out.append(TextMessageStartEvent(message_id=message_id, role="assistant"))
        if delta.delta:
            out.append(TextMessageContentEvent(message_id=self._texts[key], delta=delta.delta))
        if delta.done:
            out.append(TextMessageEndEvent(message_id=self._texts.pop(key)))
        return out

    # -- the pieces ----------------------------------------------------------------------

    def _snapshot(self, event: GoalAccepted, at: int) -> list[BaseEvent]:
        self._state = {
            "goal_id": self.goal_id,
            "text": event.text,
            "status": "running",
            "iteration": 1,
            "tasks": {},
        }
        return [StateSnapshotEvent(snapshot=self._state, timestamp=at)]

    def _change(self, at: int, change: StateChange) -> list[BaseEvent]:
        """A ``STATE_DELTA`` for ``change`` (a function of the state), if it changed it."""
        if self._state is None:
            return []  # no snapshot yet: the goal was never accepted
        before, self._state = self._state, change(self._state)
        assert self._state is not None
        ops = json_patch(before, self._state)
        return [StateDeltaEvent(delta=ops, timestamp=at)] if ops else []

    def _task(self, at: int, task_id: str, iteration: int, **facts: Any) -> list[BaseEvent]:
        def change(state: dict[str, Any]) -> dict[str, Any]:
            tasks = dict(state["tasks"])
            known = tasks.get(task_id, {})
            if known.get("iteration") != iteration:
                known = {"iteration": iteration}
            tasks[task_id] = {**known, **facts}
            return {**state, "tasks": tasks}

        return self._change(at, change)

    def _open_step(self, name: str, at: int) -> list[BaseEvent]:
        if name in self._steps:
            return []
        self._steps.append(name)
        return [StepStartedEvent(step_name=name, timestamp=at)]

    def _close_step(self, name: str, at: int) -> list[BaseEvent]:
        if name not in self._steps:
            return []
        self._steps.remove(name)
        return [StepFinishedEvent(step_name=name, timestamp=at)]

    def _call(self, event: ToolCalled | ToolRefused, at: int) -> list[BaseEvent]:
        key = _key(event)
        out = self._result(key, "superseded", at) if key in self._calls else []
        call_id = event.event_id
        self._calls[key] = call_id
        return [
            *out,
            ToolCallStartEvent(tool_call_id=call_id, tool_call_name=event.tool, timestamp=at),
            ToolCallArgsEvent(tool_call_id=call_id, delta=_args(event.args), timestamp=at),
            ToolCallEndEvent(tool_call_id=call_id, timestamp=at),
        ]

    def _implied_call(self, outcome: TaskCompleted | ToolFailed) -> list[BaseEvent]:
        """What the ``tool_called`` of a call only its outcome records (``called_at``) would
        have sent: the call's start, args and end, the task running; nothing for a recorded
        call."""
        task = self._scheduled.get((outcome.iteration, outcome.task_id))
        call = None if task is None else implied_call(outcome, task)
        return [] if call is None else self._tool_event(call, _ms(call))

    def _result(self, key: CallKey, content: str, at: int) -> list[BaseEvent]:
        call_id = self._calls.pop(key, None)
        if call_id is None:
            return []  # a call this run never saw start (an older log without tool_called)
        return [
            ToolCallResultEvent(
                message_id=f"{call_id}-result",
                tool_call_id=call_id,
                content=content,
                role="tool",
                timestamp=at,
            )
        ]

    def _end_task(self, iteration: int, task_id: str, content: str, at: int) -> list[BaseEvent]:
        """The task's end answers its calls still open, and finishes its step."""
        out: list[BaseEvent] = []
        for key in [k for k in self._calls if k[:2] == (iteration, task_id)]:
            out += self._result(key, content, at)
        return out + self._close_step(_task_step(iteration, task_id), at)

    def _close_all(self, at: int) -> list[BaseEvent]:
        out: list[BaseEvent] = []
        for key in list(self._calls):
            out += self._result(key, "the goal ended before the call answered", at)
        out += [TextMessageEndEvent(message_id=m, timestamp=at) for m in self._texts.values()]
        self._texts.clear()
        for name in list(reversed(self._steps)):
            out += self._close_step(name, at)
        return out

    def _usage_list(self) -> list[TokenUsage] | None:
        if not self._usage:
            return None
        return [
            TokenUsage(
                provider=provider,
                model=model,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                total_tokens=tokens_in + tokens_out,
            )
            for (provider, model), (tokens_in, tokens_out) in sorted(self._usage.items())
        ]


def _key(event: ToolCalled | ToolReturned | ToolFailed | ToolRefused) -> CallKey:
    attempt = event.attempt if not isinstance(event, ToolRefused) else 1
    return (event.iteration, event.task_id, attempt, event.step, event.call)


def _retried(earlier: LiveKey, later: LiveKey) -> bool:
    """Whether ``later`` is a further attempt of the call that ``earlier`` streamed."""
    return earlier[0] == later[0] and earlier[3] < later[3]


def _task_step(iteration: int, task_id: str) -> str:
    return f"task {task_id} #{iteration}"


def _planned(state: dict[str, Any], iteration: int, tasks: tuple[TaskSpec, ...]) -> dict[str, Any]:
    planned = {
        t.task_id: {"iteration": iteration, "tool": t.tool, "status": "planned"} for t in tasks
    }
    return {**state, "iteration": iteration, "tasks": {**state["tasks"], **planned}}


def _text_message(message_id: str, text: str, at: int) -> list[BaseEvent]:
    return [
        TextMessageStartEvent(message_id=message_id, role="assistant", timestamp=at),
        TextMessageContentEvent(message_id=message_id, delta=text, timestamp=at),
        TextMessageEndEvent(message_id=message_id, timestamp=at),
    ]


def map_run(thread_id: str, run_id: str, goal_id: str, events: Iterable[Event]) -> list[BaseEvent]:
    """A whole run from a goal's history (no live deltas): ``RUN_STARTED`` and what each event
    maps to, up to the goal's end."""
    mapper = RunMapper(thread_id, run_id, goal_id)
    out = mapper.started()
    for event in events:
        out += mapper.event(event)
    return out
