"""Executes one ReAct ``task_scheduled``: the imperative shell around ``react.next_react_action``.

Each think goes through :func:`services.llm.recording.recorded_call` with the goal's recorded
answers, each tool call is announced (``tool_called``, durably acknowledged) before the tool
runs, and each outcome is published before the next think. A redelivery therefore replays
the recorded steps without calling the model or re-running a tool, and resumes where the
crash left off.

Failure policy: a model that cannot answer (every provider failed, an unusable answer, or no
model configured) fails the task with a readable reason; nothing is left stuck.

A cancelled goal stops the task wherever it is (a think or a tool call): ``task_cancelled``.

A call that needs a person's approval is recorded as ``approval_requested`` and the delivery
ends there: nothing waits in this process. A long ``sleep`` or far ``wait_until`` likewise:
``tool_called`` and ``timer_started`` are recorded, the durable timer is armed, and the
delivery ends. :func:`resume_react` takes what ends the wait (``approval_granted`` /
``approval_denied`` of a ReAct step, decided by the planner; the ``timer_fired`` of a call's
timer, written with the call's result by its wake-up), finds the task in the goal's log and
runs the same loop from the record.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import structlog

from events.catalog import ApprovalDenied, ApprovalGranted, TaskScheduled, TimerFired
from events.errors import LlmError, LlmNotRecordedError, LlmResponseError, ToolError
from events.model import Event, Stamp
from events.tools import REACT_TOOL
from services.executor import decide, react, react_events, react_record, react_request
from services.executor.cancellations import CANCELLED, Cancellations, unless_cancelled
from services.executor.ports import GoalEvents, Timers
from services.executor.runner import ToolRunner
from services.llm.port import LlmPort
from services.llm.recording import Publish, answers_in, recorded_call

__all__ = ["execute_react", "resume_react"]

_log = structlog.get_logger("agora.executor")


async def execute_react(
    task: TaskScheduled,
    *,
    redelivered: bool,
    config: react_request.ReactConfig,
    runner: ToolRunner,
    llm: LlmPort | None,
    log: GoalEvents,
    publish: Publish,
    now: Callable[[], datetime],
    producer: str,
    cancellations: Cancellations | None = None,
    timers: Timers | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    history: Sequence[Event] | None = None,
) -> None:
    """Run ReAct task ``task`` to task_completed or task_failed, publishing every step; to
    task_cancelled once its goal is cancelled; or until a call waits for approval or on a
    durable timer (``timers``, needed once ``config`` has a timer threshold).

    On a first delivery nothing can be recorded yet, so the log read is skipped; ``history``,
    when given, is the goal's log already read. Raises only if publishing or the log fails;
    the consume loop then naks and the redelivery resumes.
    """

    def stamp() -> Stamp:
        return Stamp.caused_by(task, producer=producer, now=now())

    began = monotonic()
    with (cancellations or Cancellations()).watch(task.goal_id, task.iteration) as cancelled:
        outcome = await unless_cancelled(
            _react(
                task,
                redelivered=redelivered,
                config=config,
                runner=runner,
                llm=llm,
                log=log,
                publish=publish,
                stamp=stamp,
                timers=timers,
                monotonic=monotonic,
                history=history,
            ),
            cancelled,
        )
    if outcome is CANCELLED:
        spent_ms = (monotonic() - began) * 1000
        reason = (cancellations or Cancellations()).reason(task.goal_id, task.iteration)
        await publish(
            [decide.cancelled(task, react_events.REACT_ATTEMPT, spent_ms, stamp(), reason=reason)]
        )


async def _react(
    task: TaskScheduled,
    *,
    redelivered: bool,
    config: react_request.ReactConfig,
    runner: ToolRunner,
    llm: LlmPort | None,
    log: GoalEvents,
    publish: Publish,
    stamp: Callable[[], Stamp],
    timers: Timers | None,
    monotonic: Callable[[], float],
    history: Sequence[Event] | None,
) -> None:
    if history is None:
        history = await log.load(task.goal_id) if redelivered else []
    record = await _begin(task, history, publish, stamp)
    if record is None:
        return
    recorded = answers_in(history)
    turns: list[react_record.Turn] = []
    while True:
        match react.next_react_action(task, tuple(turns), record, config, stamp()):
            case react.AlreadyFinished() | react.AwaitApproval():
                return
            case react.Finish(events=events):
                await publish(events)
                return
            case react.AskApproval() | react.WaitDurably() | react.AwaitTimer() as waiting:
                await _let_go(waiting, publish, timers)
                return
            case react.Think(step=step, request=request):
                try:
                    reply, _ = await recorded_call(
                        llm, request, stamp=stamp(), recorded=recorded, publish=publish
                    )
                except LlmError as error:
                    reason = _llm_failure(error, step, configured=llm is not None)
                    await publish([react_events.react_failed(task, reason, tuple(turns), stamp())])
                    return
                turns.append(react_record.Turn(step=step, reply=reply))
            case react.Observe(observation=observation, publish=must_publish):
                if must_publish:
                    await publish([observation])
                turns[-1] = turns[-1].observed(observation)
            case react.CallTool() as action:
                await publish([action.announce])
                observation = await _run(task, action, runner, stamp, monotonic)
                await publish([observation])
                turns[-1] = turns[-1].observed(observation)


async def _let_go(
    waiting: react.AskApproval | react.WaitDurably | react.AwaitTimer,
    publish: Publish,
    timers: Timers | None,
) -> None:
    """The next call waits for a person or on a durable timer: record (and arm) what it waits
    for; the task then holds nothing until the answer or the wake-up resumes it."""
    if isinstance(waiting, react.AskApproval):
        await publish([waiting.request])  # acknowledged: the answer resumes the task
        return
    assert timers is not None, "a call waits on a timer, but timers are not wired"
    if isinstance(waiting, react.WaitDurably):
        # Recorded before it is armed: a crash in between re-arms it on the redelivery.
        await publish([waiting.announce, waiting.timer])
    await timers.arm(waiting.timer)  # its wake-up records the result and resumes the task


async def _begin(
    task: TaskScheduled, history: Sequence[Event], publish: Publish, stamp: Callable[[], Stamp]
) -> react_record.ReactRecord | None:
    """The task's record, once it is known to go on (``task_started`` recorded); None when it
    ended already, or ends now because its goal was cancelled or its iteration interrupted."""
    record = react_record.fold_react(history, task.iteration, task.task_id)
    if record.finished:
        return None
    stop = decide.stop_of(history, task.iteration)
    if stop is not None:
        await publish([decide.stopped(task, stop, react_events.REACT_ATTEMPT, 0.0, stamp())])
        return None
    if not record.started:
        await publish([decide.started(task, react_events.REACT_ATTEMPT, stamp())])
    return record


async def resume_react(
    ended: ApprovalGranted | ApprovalDenied | TimerFired,
    *,
    log: GoalEvents,
    resume: Callable[[TaskScheduled, Sequence[Event]], Awaitable[None]],
) -> None:
    """Go on with the ReAct task whose call's wait ``ended``: a person answered it, or its
    timer fired. Nothing for a plain task's: the planner schedules or fails a task that waited
    for approval itself, and a plain task's wake-up finished or ran it already."""
    if not ended.step:
        return
    history = await log.load(ended.goal_id)
    task = _react_task(history, ended.iteration, ended.task_id)
    if task is None:
        _log.warning(
            "resume_for_unknown_react_task", event_id=ended.event_id, task_id=ended.task_id
        )
        return
    await resume(task, history)


def _react_task(history: Sequence[Event], iteration: int, task_id: str) -> TaskScheduled | None:
    """The ReAct task ``task_id`` of ``iteration`` as it was scheduled, if it was."""
    for event in history:
        if (
            isinstance(event, TaskScheduled)
            and event.iteration == iteration
            and event.task_id == task_id
            and event.tool == REACT_TOOL
        ):
            return event
    return None


async def _run(
    task: TaskScheduled,
    action: react.CallTool,
    runner: ToolRunner,
    stamp: Callable[[], Stamp],
    monotonic: Callable[[], float],
) -> react_record.Observation:
    began = monotonic()
    try:
        result = await runner.invoke(action.tool, action.args, task.timeout_s)
    except ToolError as error:
        duration_ms = (monotonic() - began) * 1000
        return react_events.react_tool_failed(
            task,
            step=action.step,
            call=action.call,
            tool=action.tool,
            error=error,
            duration_ms=duration_ms,
            stamp=stamp(),
        )
    duration_ms = (monotonic() - began) * 1000
    return react_events.react_returned(
        task,
        step=action.step,
        call=action.call,
        tool=action.tool,
        output=result.text,
        duration_ms=duration_ms,
        stamp=stamp(),
        structured=result.structured,
    )


def _llm_failure(error: LlmError, step: int, *, configured: bool) -> str:
    if isinstance(error, LlmNotRecordedError) and not configured:
        return (
            "react tasks need a language model and none is configured "
            "(set AGORA_LLM_BASE_URL and AGORA_LLM_MODEL)"
        )
    kind = "gave an unusable answer" if isinstance(error, LlmResponseError) else "is unavailable"
    return f"the language model {kind} at react step {step}: {error}"
