"""A cancelled goal's tasks: given the goal cancelled (heard live, or in the log) -> when its
task runs or is delivered -> then the call stops, ``task_cancelled`` is recorded, and no result
that arrives too late is recorded.

Uses the in-memory log of tests/unit/test_executor_handler.py (guarded, deduplicating).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from events.catalog import GoalCancelled, TaskCancelled, TaskScheduled
from events.model import Event, Stamp
from events.tools import EchoArgs, ToolSpec
from services.executor import decide
from services.executor.cancellations import (
    CANCELLED,
    DECLINED,
    Cancellations,
    Grace,
    unless_cancelled,
)
from services.executor.handler import execute_task
from services.executor.registry import ToolRegistry
from services.executor.runner import ToolRunner
from services.executor.tools.context import ToolContext
from tests.unit.test_executor_handler import NOW, PRODUCER, Gate, Stream, scheduled


def goal_cancelled(goal_id: str = "g-1") -> GoalCancelled:
    return GoalCancelled(
        event_id="cancelled-1",
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id="req-1",
        correlation_id=goal_id,
        producer="planner@0.1.0",
        command_id="c-1",
    )


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ToolContext]:
    async with httpx.AsyncClient() as http:
        yield ToolContext(workspace=tmp_path, http=http)


def gated_runner(ctx: ToolContext, gate: Gate) -> ToolRunner:
    registry = ToolRegistry.builtin()
    # Side effects: each call is stored before it runs (CallRecord.BEFORE_RUN).
    registry.register(ToolSpec("gated", "runs until released", EchoArgs, side_effects=True), gate)
    return ToolRunner(registry, ctx)


def run(
    task: TaskScheduled,
    stream: Stream,
    runner: ToolRunner,
    cancellations: Cancellations,
    *,
    redelivered: bool = False,
) -> asyncio.Task[None]:
    return asyncio.ensure_future(
        execute_task(
            task,
            task_seq=stream.events.index(task) + 1 if task in stream.events else 0,
            redelivered=redelivered,
            runner=runner,
            log=stream,
            publish=stream.publish,
            now=lambda: NOW,
            producer=PRODUCER,
            cancellations=cancellations,
        )
    )


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


async def test_a_running_call_stops_when_its_goal_is_cancelled(ctx: ToolContext) -> None:
    gate, cancellations = Gate(), Cancellations()
    task = scheduled(tool="gated")
    stream = Stream([task])
    running = run(task, stream, gated_runner(ctx, gate), cancellations)
    await asyncio.wait_for(gate.started.wait(), 5)

    stream.events.append(goal_cancelled())  # the planner's decision, then the doorbell rings
    cancellations.cancel("g-1")
    await asyncio.wait_for(running, 5)

    assert gate.stopped
    assert kinds(stream.events) == ["TaskScheduled", "ToolCalled", "GoalCancelled", "TaskCancelled"]
    stop = stream.events[-1]
    assert isinstance(stop, TaskCancelled)
    assert (stop.task_id, stop.attempts, stop.reason) == ("s1", 1, decide.CANCELLED_REASON)
    assert cancellations.watched == 0  # nothing of the goal is held any more


async def test_a_result_that_arrives_after_the_cancellation_is_dropped(ctx: ToolContext) -> None:
    gate, cancellations = Gate(), Cancellations()
    task = scheduled(tool="gated")
    stream = Stream([task])
    running = run(task, stream, gated_runner(ctx, gate), cancellations)
    await asyncio.wait_for(gate.started.wait(), 5)

    # The doorbell was missed (a reconnect): the tool finishes, but its write is refused,
    # because the goal's log moved on, and the cancellation is found there.
    stream.events.append(goal_cancelled())
    gate.release.set()
    await asyncio.wait_for(running, 5)

    assert kinds(stream.events) == ["TaskScheduled", "ToolCalled", "GoalCancelled", "TaskCancelled"]


async def test_a_task_delivered_after_the_cancellation_never_runs(ctx: ToolContext) -> None:
    gate = Gate()
    task = scheduled(tool="gated")
    stream = Stream([task, goal_cancelled()])

    await asyncio.wait_for(run(task, stream, gated_runner(ctx, gate), Cancellations()), 5)

    assert not gate.started.is_set()
    assert kinds(stream.events) == ["TaskScheduled", "GoalCancelled", "TaskCancelled"]
    stop = stream.events[-1]
    assert isinstance(stop, TaskCancelled)
    assert stop.attempts == 0


async def test_an_instant_tool_of_a_goal_heard_cancelled_is_not_called(ctx: ToolContext) -> None:
    # echo runs to its end in one step, so no signal is watched: it is checked before the call.
    cancellations = Cancellations()
    cancellations.cancel("g-1")
    task = scheduled(tool="echo")
    stream = Stream([task])

    await asyncio.wait_for(
        run(task, stream, ToolRunner(ToolRegistry.builtin(), ctx), cancellations), 5
    )

    # echo records no call before it runs, so the cancelled task made no attempt.
    assert kinds(stream.events) == ["TaskScheduled", "TaskCancelled"]
    stop = stream.events[-1]
    assert isinstance(stop, TaskCancelled)
    assert (stop.attempts, stop.reason) == (0, decide.CANCELLED_REASON)
    assert cancellations.watched == 0


async def test_a_redelivered_task_of_a_cancelled_goal_finishes_from_the_record() -> None:
    task = scheduled()
    called = decide.called(task, 1, task.args, _stamp(task))
    record = decide.fold_task([task, called, goal_cancelled()], 1, "s1")
    assert record.stop is not None

    execution = decide.plan_execution(task, record, _stamp(task))

    assert isinstance(execution, decide.FinishFromRecord)
    (stop,) = execution.events
    assert isinstance(stop, TaskCancelled)
    assert stop.attempts == 1
    finished = decide.fold_task([task, called, goal_cancelled(), stop], 1, "s1")
    assert isinstance(decide.plan_execution(task, finished, _stamp(task)), decide.AlreadyFinished)


async def test_unless_cancelled_returns_the_result_or_stops_the_work() -> None:
    signal = asyncio.Event()
    assert await unless_cancelled(asyncio.sleep(0, result="done"), signal) == "done"

    stopped = asyncio.Event()

    async def forever() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return "never"

    work = asyncio.ensure_future(unless_cancelled(forever(), signal))
    await asyncio.sleep(0)
    signal.set()
    assert await asyncio.wait_for(work, 5) is CANCELLED
    assert stopped.is_set()  # the work had stopped when the answer came back

    # Already cancelled: the work never starts.
    assert await unless_cancelled(forever(), signal) is CANCELLED


def test_a_goal_heard_cancelled_before_its_call_is_watched_is_signalled_at_once() -> None:
    cancellations = Cancellations(remember=2)
    cancellations.cancel("g-1")
    with cancellations.watch("g-1") as signal:
        assert signal.is_set()
    with cancellations.watch("g-2") as signal:
        assert not signal.is_set()
        cancellations.cancel("g-2")
        assert signal.is_set()
    cancellations.cancel("g-3")
    assert not cancellations.is_cancelled("g-1")  # only the most recent are remembered
    assert cancellations.watched == 0


def _stamp(task: TaskScheduled) -> Stamp:
    return Stamp.caused_by(task, producer=PRODUCER, now=NOW)


async def test_past_its_grace_the_work_goes_on_while_then_runs_and_stops_when_it_refuses() -> None:
    release, signal = asyncio.Event(), asyncio.Event()
    stopped: list[str] = []

    async def held(name: str) -> str:
        try:
            await release.wait()
        except asyncio.CancelledError:
            stopped.append(name)
            raise
        return name

    async def refuses() -> bool:
        return False

    assert await unless_cancelled(held("refused"), signal, Grace(0.0, refuses)) is DECLINED

    async def hears_a_cancellation() -> bool:
        signal.set()
        return True

    # A cancellation heard while then() runs stops the work, though then() agreed.
    cancelled = await unless_cancelled(held("cancelled"), signal, Grace(0.0, hears_a_cancellation))
    assert cancelled is CANCELLED
    assert stopped == ["refused", "cancelled"]  # each had stopped when the answer came back

    async def lets_it_finish() -> bool:
        release.set()  # the work goes on while then() runs
        await asyncio.sleep(0)
        return True

    assert await unless_cancelled(held("done"), asyncio.Event(), Grace(0.0, lets_it_finish)) == (
        "done"
    )
