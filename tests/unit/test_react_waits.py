"""Durable waits of the calls a ReAct task's model asks for: recorded and let go, woken from
the log, resumed from the record. Real tools, a scripted model, an in-memory deduplicating log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

from events.approvals import ApprovalPolicy, ApprovalRule
from events.catalog import (
    ApprovalRequested,
    GoalCancelled,
    TaskCancelled,
    TaskCompleted,
    TaskScheduled,
    TimerFired,
    TimerStarted,
    ToolReturned,
)
from events.model import Stamp
from projections.timeline import build_timeline
from services.executor import decide, react_record, react_request, react_waits, waits
from services.executor.react_handler import execute_react
from services.executor.registry import ToolRegistry
from services.executor.runner import ToolRunner
from services.executor.tools.context import ToolContext
from tests.unit.test_executor_react import (
    NOW,
    PRODUCER,
    PROMPT,
    ScriptedModel,
    Stream,
    answer,
    by_observations,
    react_task,
    reply,
    tool_messages,
)

THRESHOLD_S = 30.0
HOUR = reply(("sleep", {"seconds": 3600}))
DONE = reply(content="rested")


@dataclass
class ArmedTimers:
    """The Timers port, remembering what it armed (nats-server keeps them for real)."""

    threshold_s: float = THRESHOLD_S
    armed: list[TimerStarted] = field(default_factory=list)

    async def arm(self, timer: TimerStarted, *, copy: str = "") -> None:
        del copy  # which copy is armed is the scheduled timers' concern
        self.armed.append(timer)

    async def wake_now(self, timer: TimerStarted) -> None:
        del timer


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[ToolRunner]:
    async with httpx.AsyncClient() as http:
        yield ToolRunner(ToolRegistry.builtin(), ToolContext(workspace=tmp_path, http=http))


def sleeper() -> TaskScheduled:
    # Its timeout (5 s) bounds each call that runs, not a call that waits on a timer.
    granted = ("sleep", "wait_until", "echo")
    return react_task(granted, args={"instruction": "rest an hour, then say so"})


async def run(
    task: TaskScheduled,
    stream: Stream,
    runner: ToolRunner,
    model: ScriptedModel,
    timers: ArmedTimers,
    *,
    redelivered: bool = False,
    seconds: float = 0.0,
) -> None:
    await execute_react(
        task,
        redelivered=redelivered,
        config=react_request.ReactConfig(
            tools=runner.registry.specs(), prompt=PROMPT, timer_threshold_s=THRESHOLD_S
        ),
        runner=runner,
        llm=model,
        log=stream,
        publish=stream.publish,
        now=lambda: NOW + timedelta(seconds=seconds),
        producer=PRODUCER,
        timers=timers,
    )


def wake(
    task: TaskScheduled, stream: Stream, timer: TimerStarted, seconds: float
) -> waits.WakeDecision:
    """The wake-up's decision at ``seconds`` after NOW, from the log."""
    record = react_record.fold_react(stream.events, task.iteration, task.task_id)
    stop = decide.stop_of(stream.events, task.iteration)
    stamp = Stamp.caused_by(timer, producer=PRODUCER, now=NOW + timedelta(seconds=seconds))
    return react_waits.on_call_wakeup(task, record, stop, timer.timer_id, stamp)


def drawn(task: TaskScheduled, stream: Stream) -> tuple[str, list[tuple[str, str, str]]]:
    """The ReAct task's bar on the goal's timeline: its status, and its calls'."""
    timeline = build_timeline(task.goal_id, [task, *stream.events])
    assert timeline is not None
    (task,) = [bar for bar in timeline.bars if bar.kind == "task"]
    calls = [(c.label, c.status, c.detail) for c in task.children if c.kind == "tool"]
    return task.status, calls


async def test_a_long_sleep_the_model_asks_for_waits_on_a_timer_and_resumes_on_its_wakeup(
    runner: ToolRunner,
) -> None:
    task, stream, timers = sleeper(), Stream(), ArmedTimers()
    model = ScriptedModel(by_observations(HOUR, DONE))

    await run(task, stream, runner, model, timers)

    # Recorded, armed, let go: nothing of the call ran, the task is not over.
    assert stream.types() == [
        "task_started",
        "llm_requested",
        "llm_responded",
        "tool_called",
        "timer_started",
    ]
    (timer,) = stream.of(TimerStarted)
    assert (timer.step, timer.call, timer.tool, timer.purpose) == (1, 1, "sleep", "sleep")
    assert timer.due_at == NOW + timedelta(seconds=3600)
    assert timers.armed == [timer]
    # The timeline shows the call, and its task, waiting on the timer.
    assert drawn(task, stream) == (
        "waiting",
        [("sleep (step 1)", "waiting", "waits until 2026-01-01T13:00:00Z")],
    )

    # A redelivery of the task meanwhile arms the same timer again and asks nothing.
    await run(task, stream, runner, model, timers, redelivered=True, seconds=5)
    assert timers.armed == [timer, timer]
    assert len(stream.events) == 5
    assert len(model.requests) == 1

    decision = wake(task, stream, timer, seconds=3600.4)
    assert isinstance(decision, waits.Finish)
    fired, returned = decision.events
    assert isinstance(fired, TimerFired)
    assert (fired.timer_id, fired.step, fired.call) == (timer.timer_id, 1, 1)
    assert isinstance(returned, ToolReturned)
    assert (returned.step, returned.call, returned.output) == (1, 1, "slept 3600s")
    assert returned.duration_ms == pytest.approx(3_600_400)
    # Every copy of the wake-up decides events with the same ids.
    again = wake(task, stream, timer, seconds=3601)
    assert isinstance(again, waits.Finish)
    assert [e.event_id for e in again.events] == [e.event_id for e in decision.events]
    await stream.publish(decision.events)
    assert drawn(task, stream) == ("running", [("sleep (step 1)", "completed", "3600.40 s")])

    # Resumed from the record: the first think is answered from the log, the model sees the
    # sleep's result in the second.
    await run(task, stream, runner, model, timers, redelivered=True, seconds=3601)
    assert len(model.requests) == 2
    assert tool_messages(model.requests[1]) == [
        {"tool": "sleep", "status": "returned", "output": "slept 3600s"}
    ]
    (done,) = stream.of(TaskCompleted)
    assert done.output == "rested"
    assert timers.armed == [timer, timer]
    # A second copy of the wake-up, after the call's result is recorded, changes nothing.
    assert isinstance(wake(task, stream, timer, seconds=3700), waits.Ignore)


async def test_wakeups_are_ignored_rearmed_or_cancel_the_task_as_the_log_says(
    runner: ToolRunner,
) -> None:
    task, stream, timers = sleeper(), Stream(), ArmedTimers()
    await run(task, stream, runner, ScriptedModel(by_observations(HOUR, DONE)), timers)
    (timer,) = stream.of(TimerStarted)

    assert wake(task, stream, timer, seconds=3598) == waits.Rearm(timer)  # early
    other = msgspec.structs.replace(timer, timer_id="t-other")
    assert isinstance(wake(task, stream, other, seconds=3600), waits.Ignore)

    cancel = GoalCancelled(
        **Stamp.caused_by(task, producer="planner@0.1.0", now=NOW).envelope("goal_cancelled"),
        command_id="c-cancel",
        reason="not needed",
    )
    await stream.publish([cancel])
    decision = wake(task, stream, timer, seconds=10)
    assert isinstance(decision, waits.Finish)
    (ended,) = decision.events
    assert isinstance(ended, TaskCancelled)
    assert (ended.task_id, ended.attempts) == ("r1", 1)
    await stream.publish(decision.events)
    assert isinstance(wake(task, stream, timer, seconds=3600), waits.Ignore)  # finished


async def test_a_sleep_within_the_threshold_runs_in_process(runner: ToolRunner) -> None:
    task, stream, timers = sleeper(), Stream(), ArmedTimers()
    model = ScriptedModel(by_observations(reply(("sleep", {"seconds": 0})), DONE))

    await run(task, stream, runner, model, timers)

    assert "timer_started" not in stream.types()
    assert [r.output for r in stream.of(ToolReturned)] == ["slept 0s"]
    assert timers.armed == []
    assert len(stream.of(TaskCompleted)) == 1


async def test_a_far_wait_until_waits_for_its_time_and_returns_what_it_does_in_process(
    runner: ToolRunner,
) -> None:
    task, stream, timers = sleeper(), Stream(), ArmedTimers()
    until = reply(("wait_until", {"at": "2026-01-01T14:00:00Z"}))  # two hours after NOW
    await run(task, stream, runner, ScriptedModel(by_observations(until, DONE)), timers)

    (timer,) = timers.armed
    assert (timer.purpose, timer.due_at, timer.seconds) == (
        "wait_until",
        NOW + timedelta(hours=2),
        7200.0,
    )
    decision = wake(task, stream, timer, seconds=7200)
    assert isinstance(decision, waits.Finish)
    _, returned = decision.events
    assert isinstance(returned, ToolReturned)
    assert returned.output == "waited until 2026-01-01T14:00:00Z"


async def test_a_sleep_that_needs_approval_waits_for_the_answer_then_on_its_timer(
    runner: ToolRunner,
) -> None:
    policy = ApprovalPolicy(rules=(ApprovalRule(tool="sleep"),), deadline_s=60.0)
    task = msgspec.structs.replace(sleeper(), approval=policy)
    stream, timers = Stream(), ArmedTimers()
    model = ScriptedModel(by_observations(HOUR, DONE))

    await run(task, stream, runner, model, timers)
    (request,) = stream.of(ApprovalRequested)
    assert timers.armed == []  # nothing waits on a timer before a person approved the call

    await stream.publish([answer(request)])
    await run(task, stream, runner, model, timers, redelivered=True, seconds=20)
    (timer,) = timers.armed
    assert (timer.step, timer.call) == (request.step, request.call)
    assert timer.due_at == NOW + timedelta(seconds=3620)
    assert len(model.requests) == 1
