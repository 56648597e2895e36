"""execute_task end to end, with in-memory fakes of the goal log and of a deduplicating publish.

Given the events already recorded -> when a task_scheduled is (re)delivered -> then the events
the executor records, and how often the tool really ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from events.catalog import (
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    ToolCalled,
    ToolFailed,
)
from events.errors import ConcurrentWriteError, ToolError
from events.model import Event, Stamp, event_type
from events.tools import EchoArgs, ToolSpec
from services.executor import decide
from services.executor.handler import TaskTakenOverError, execute_task
from services.executor.registry import ToolRegistry
from services.executor.runner import ToolRunner
from services.executor.tools.context import ToolContext

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PRODUCER = "executor@0.1.0"


class PublishCrashedError(Exception):
    """The process dies while publishing."""


@dataclass(frozen=True)
class Recorded:
    events: list[Event]
    last_seq: int


@dataclass(frozen=True)
class Ack:
    seq: int
    duplicate: bool


class Stream:
    """The goal's event log. Publishing dedupes on event_id like JetStream's duplicate window,
    refuses a guarded append when the log moved past the expected sequence (as JetStream's
    Nats-Expected-Last-Subject-Sequence does), and can be told to crash after a number of
    successfully stored events."""

    def __init__(self, events: Sequence[Event] = ()) -> None:
        self.events: list[Event] = list(events)
        self.loads = 0
        self.crash_after: int | None = None

    async def load(self, goal_id: str) -> Recorded:
        self.loads += 1
        return Recorded([e for e in self.events if e.goal_id == goal_id], len(self.events))

    async def since(self, goal_id: str, after_seq: int) -> Recorded:
        newer = [e for e in self.events[after_seq:] if e.goal_id == goal_id]
        return Recorded(newer, len(self.events))

    async def publish(self, events: Sequence[Event], *, expected_last_seq: int) -> list[Ack]:
        if expected_last_seq != len(self.events):
            raise ConcurrentWriteError(f"last is {len(self.events)}, not {expected_last_seq}")
        acks = []
        for event in events:
            if self.crash_after is not None and len(self.events) >= self.crash_after:
                self.crash_after = None
                raise PublishCrashedError
            stored = next(
                (i for i, e in enumerate(self.events) if e.event_id == event.event_id), None
            )
            if stored is None:
                self.events.append(event)
                acks.append(Ack(len(self.events), duplicate=False))
            else:
                acks.append(Ack(stored + 1, duplicate=True))
        return acks

    def tags(self) -> list[str]:
        return [f"{event_type(e)}:{getattr(e, 'attempt', '-')}" for e in self.events]


class CountingTool:
    """Fails with the scripted errors first, then returns its text; records what the log held."""

    def __init__(self, *errors: ToolError) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.log_sizes_at_call: list[int] = []
        self.stream: Stream | None = None

    async def __call__(self, args: EchoArgs, _ctx: ToolContext) -> str:
        self.calls += 1
        if self.stream is not None:
            self.log_sizes_at_call.append(len(self.stream.events))
        if self.errors:
            raise self.errors.pop(0)
        return args.text


class Delays:
    def __init__(self) -> None:
        self.seen: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seen.append(seconds)


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ToolContext]:
    async with httpx.AsyncClient() as http:
        yield ToolContext(workspace=tmp_path, http=http)


def runner_with(ctx: ToolContext, tool: CountingTool | None = None) -> ToolRunner:
    registry = ToolRegistry.builtin()
    if tool is not None:
        # Side effects: each call is stored before it runs (CallRecord.BEFORE_RUN).
        registry.register(ToolSpec("counting", "scripted", EchoArgs, side_effects=True), tool)
    return ToolRunner(registry, ctx)


def scheduled(
    tool: str = "counting", args: dict[str, Any] | None = None, max_attempts: int = 3
) -> TaskScheduled:
    return TaskScheduled(
        event_id="sched-1",
        goal_id="g-1",
        occurred_at=NOW,
        causation_id="plan-1",
        correlation_id="g-1",
        producer="planner@0.1.0",
        iteration=1,
        task_id="s1",
        description="a task",
        tool=tool,
        args={"text": "done"} if args is None else args,
        timeout_s=5.0,
        max_attempts=max_attempts,
    )


async def deliver(
    task: TaskScheduled,
    stream: Stream,
    runner: ToolRunner,
    *,
    redelivered: bool,
    delays: Delays | None = None,
) -> None:
    ticks = iter(float(n) for n in range(1000))  # each monotonic read is 1 s after the last
    await execute_task(
        task,
        task_seq=next(
            (i + 1 for i, e in enumerate(stream.events) if e.event_id == task.event_id),
            len(stream.events),
        ),
        redelivered=redelivered,
        runner=runner,
        log=stream,
        publish=stream.publish,
        now=lambda: NOW,
        producer=PRODUCER,
        sleep=delays or Delays(),
        monotonic=lambda: next(ticks),
    )


def only(stream: Stream, kind: type[Event]) -> Any:
    (event,) = [e for e in stream.events if isinstance(e, kind)]
    return event


async def test_first_delivery_runs_the_tool_and_records_every_step(ctx: ToolContext) -> None:
    tool = CountingTool()
    stream = Stream()
    tool.stream = stream

    await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=False)

    # The first tool_called is the task's start; task_completed is the attempt's return.
    assert stream.tags() == ["tool_called:1", "task_completed:-"]
    assert tool.log_sizes_at_call == [1]  # the call was durable before the tool ran
    assert stream.loads == 0  # fast path: a first delivery has nothing to read back
    completed = only(stream, TaskCompleted)
    assert (completed.output, completed.attempts, completed.duration_ms) == ("done", 1, 1000.0)
    assert completed.attempt_duration_ms == 1000.0
    assert only(stream, ToolCalled).args == {"text": "done"}


async def test_transient_failures_are_retried_with_backoff_until_success(ctx: ToolContext) -> None:
    tool = CountingTool(ToolError("flaky", transient=True), ToolError("flaky", transient=True))
    stream, delays = Stream(), Delays()

    await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=False, delays=delays)

    assert stream.tags() == [
        "tool_called:1",
        "tool_failed:1",
        "tool_called:2",
        "tool_failed:2",
        "tool_called:3",
        "task_completed:-",
    ]
    assert delays.seen == [0.05, 0.1]
    assert tool.calls == 3
    completed = only(stream, TaskCompleted)
    assert (completed.attempts, completed.duration_ms) == (3, 3000.0)
    assert completed.attempt_duration_ms == 1000.0  # the third attempt's own time


async def test_a_permanent_failure_fails_the_task_at_once(ctx: ToolContext) -> None:
    tool = CountingTool(ToolError("HTTP 404 from upstream"))
    stream, delays = Stream(), Delays()

    await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=False, delays=delays)

    assert stream.tags() == ["tool_called:1", "tool_failed:1", "task_failed:-"]
    assert delays.seen == []
    failed = only(stream, TaskFailed)
    assert (failed.error, failed.attempts) == ("HTTP 404 from upstream", 1)
    assert only(stream, ToolFailed).transient is False
    assert failed.transient is False  # the planner does not revise it into the same plan


async def test_transient_failures_exhaust_max_attempts(ctx: ToolContext) -> None:
    tool = CountingTool(*(ToolError(f"down #{n}", transient=True) for n in range(1, 4)))
    stream = Stream()

    await deliver(scheduled(max_attempts=2), stream, runner_with(ctx, tool), redelivered=False)

    assert tool.calls == 2
    failed = only(stream, TaskFailed)
    assert (failed.error, failed.attempts) == ("down #2", 2)
    assert failed.transient is True  # more attempts or time may get past it


async def test_invalid_arguments_are_recorded_as_a_permanent_failure(ctx: ToolContext) -> None:
    stream = Stream()

    await deliver(
        scheduled(tool="calculator", args={"expr": "1+1"}),
        stream,
        runner_with(ctx),
        redelivered=False,
    )

    assert "expression: Field required" in only(stream, TaskFailed).error


async def test_redelivery_finishes_an_older_logs_returned_call_without_running_again(
    ctx: ToolContext,
) -> None:
    task = scheduled()
    stamp = Stamp.caused_by(task, producer=PRODUCER, now=NOW)
    # An older executor stored the return but died before task_completed.
    returned = decide.returned(task, 1, "done", 7.0, stamp)
    stream = Stream([decide.started(task, 1, stamp), decide.called(task, 1, task.args, stamp)])
    stream.events.append(returned)
    tool = CountingTool()

    await deliver(task, stream, runner_with(ctx, tool), redelivered=True)

    assert tool.calls == 0
    assert stream.tags() == [
        "task_started:1",
        "tool_called:1",
        "tool_returned:1",
        "task_completed:-",
    ]
    completed = only(stream, TaskCompleted)
    # The attempt's return is the recorded tool_returned; task_completed only closes the task.
    assert (completed.output, completed.attempt_duration_ms) == ("done", None)


async def test_a_crash_before_the_completion_is_stored_runs_a_new_attempt(
    ctx: ToolContext,
) -> None:
    tool = CountingTool()
    stream = Stream()
    stream.crash_after = 1  # tool_called is stored; the process dies before task_completed
    with pytest.raises(PublishCrashedError):
        await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=False)

    await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=True)

    # The first call may have acted: it is closed as interrupted, never repeated under its number.
    assert stream.tags() == ["tool_called:1", "tool_failed:1", "tool_called:2", "task_completed:-"]
    assert tool.calls == 2


async def test_an_instant_tool_without_side_effects_is_recorded_by_its_outcomes_alone(
    ctx: ToolContext,
) -> None:
    tool = CountingTool(ToolError("flaky", transient=True))
    registry = ToolRegistry.builtin()
    registry.register(ToolSpec("pure", "scripted", EchoArgs, instant=True), tool)
    runner, task = ToolRunner(registry, ctx), scheduled(tool="pure")
    stream = Stream()
    stream.crash_after = 1  # attempt 1's failure is stored; the process dies before the rest

    with pytest.raises(PublishCrashedError):
        await deliver(task, stream, runner, redelivered=False)
    assert (stream.tags(), tool.calls) == (["tool_failed:1"], 2)
    # Neither the failed attempt nor the one that crashed wrote a tool_called: the redelivery
    # runs attempt 2 again (harmless for such a tool), and the task completes once.
    await deliver(task, stream, runner, redelivered=True)
    await deliver(task, stream, runner, redelivered=True)

    assert (stream.tags(), tool.calls) == (["tool_failed:1", "task_completed:-"], 3)
    failed, completed = stream.events
    assert isinstance(failed, ToolFailed)
    assert failed.called_at == completed.called_at == NOW  # when each attempt was called
    assert (completed.attempts, completed.attempt_duration_ms) == (2, 1000.0)


async def test_redelivery_of_a_finished_task_publishes_nothing(ctx: ToolContext) -> None:
    tool = CountingTool()
    stream = Stream()
    await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=False)
    before = list(stream.events)

    await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=True)

    assert stream.events == before
    assert tool.calls == 1


async def test_a_side_effect_call_that_never_returned_gets_a_new_attempt_number(
    ctx: ToolContext,
) -> None:
    task = scheduled(tool="write_file", args={"path": "out/report.txt", "content": "42"})
    stamp = Stamp.caused_by(task, producer=PRODUCER, now=NOW)
    # The previous executor announced attempt 1 and died: did the write happen? Unknown.
    stream = Stream([decide.started(task, 1, stamp), decide.called(task, 1, task.args, stamp)])

    await deliver(task, stream, runner_with(ctx), redelivered=True)

    assert stream.tags() == [
        "task_started:1",
        "tool_called:1",
        "tool_failed:1",
        "tool_called:2",
        "task_completed:-",
    ]
    interrupted = next(e for e in stream.events if isinstance(e, ToolFailed))
    assert interrupted.error == decide.INTERRUPTED_ERROR
    assert only(stream, TaskCompleted).attempts == 2
    assert (ctx.workspace / "out" / "report.txt").read_text() == "42"
    assert sum(isinstance(e, TaskStarted) for e in stream.events) == 1


async def test_a_crash_mid_retry_resumes_at_the_next_attempt(ctx: ToolContext) -> None:
    tool = CountingTool(ToolError("flaky", transient=True))
    stream = Stream()
    stream.crash_after = 2  # called:1, failed:1 stored; the process dies before called:2
    with pytest.raises(PublishCrashedError):
        await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=False)

    await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=True)

    assert stream.tags() == ["tool_called:1", "tool_failed:1", "tool_called:2", "task_completed:-"]
    assert tool.calls == 2


async def test_a_first_delivery_repeated_finds_its_events_stored_and_never_reruns_the_tool(
    ctx: ToolContext,
) -> None:
    """Both runs take the same decisions: the second one's announcement comes back as a
    duplicate stored by someone else, so it stands down before running the tool."""
    stream = Stream()
    tool = CountingTool()
    await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=False)
    first = list(stream.events)

    with pytest.raises(TaskTakenOverError):
        await deliver(scheduled(), stream, runner_with(ctx, tool), redelivered=False)

    assert stream.events == first
    assert tool.calls == 1
    assert isinstance(first[1], TaskCompleted)


# -- replicas: a stalled executor whose delivery went to another one -----------------------


def other_replica(task: TaskScheduled) -> Stamp:
    return Stamp.caused_by(task, producer=PRODUCER, now=NOW)


class ToolThatLetsOthersWrite(CountingTool):
    """While the tool runs, other writers append to the goal's log."""

    def __init__(self, stream: Stream, *appended: Event) -> None:
        super().__init__()
        self.appended = appended
        self.target = stream

    async def __call__(self, args: EchoArgs, _ctx: ToolContext) -> str:
        self.target.events.extend(self.appended)
        return await super().__call__(args, _ctx)


async def test_a_stalled_replica_that_lost_the_task_before_announcing_never_runs_the_tool(
    ctx: ToolContext,
) -> None:
    task = scheduled()
    # While this replica stalled, the redelivery went to another one, which started attempt 1.
    stream = Stream([task, decide.started(task, 1, other_replica(task))])
    stream.events.append(decide.called(task, 1, task.args, other_replica(task)))
    tool = CountingTool()

    with pytest.raises(TaskTakenOverError):
        await deliver(task, stream, runner_with(ctx, tool), redelivered=False)

    assert tool.calls == 0
    assert stream.tags() == ["task_scheduled:-", "task_started:1", "tool_called:1"]


async def test_a_late_result_after_a_takeover_is_dropped_not_recorded(ctx: ToolContext) -> None:
    task = scheduled()
    stream = Stream([task])
    interrupted = ToolError(decide.INTERRUPTED_ERROR, transient=True)
    # The tool outlives the ack wait: another replica records attempt 1 as interrupted and
    # starts attempt 2 before this one's result arrives.
    tool = ToolThatLetsOthersWrite(
        stream,
        decide.tool_failed(task, 1, interrupted, 0.0, other_replica(task)),
        decide.called(task, 2, task.args, other_replica(task)),
    )

    with pytest.raises(TaskTakenOverError):
        await deliver(task, stream, runner_with(ctx, tool), redelivered=False)

    assert tool.calls == 1
    assert stream.tags() == [
        "task_scheduled:-",
        "tool_called:1",
        "tool_failed:1",
        "tool_called:2",
    ]


async def test_writes_of_other_tasks_of_the_goal_only_cause_a_retry(ctx: ToolContext) -> None:
    task = scheduled()
    sibling = msgspec.structs.replace(task, event_id="sched-2", task_id="s2")
    stream = Stream([task, sibling])
    tool = ToolThatLetsOthersWrite(
        stream, decide.called(sibling, 1, sibling.args, other_replica(sibling))
    )

    await deliver(task, stream, runner_with(ctx, tool), redelivered=False)

    assert tool.calls == 1
    assert [e for e in stream.tags() if not e.startswith("task_scheduled")] == [
        "tool_called:1",
        "tool_called:1",
        "task_completed:-",
    ]


class Gate:
    """A tool that runs until it is let go (or cancelled); says when it started."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.stopped = False

    async def __call__(self, args: EchoArgs, _ctx: ToolContext) -> str:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.stopped = True
            raise
        return args.text


class HeldTool(Gate):
    """A tool without side effects that takes time (a ``Gate``); on start it lets ``appended``
    into the goal's log, as other writers would while it runs."""

    def __init__(self, stream: Stream, *appended: Event) -> None:
        super().__init__()
        self.stream = stream
        self.appended = appended
        self.log_sizes_at_call: list[int] = []

    async def __call__(self, args: EchoArgs, _ctx: ToolContext) -> str:
        self.log_sizes_at_call.append(len(self.stream.events))
        self.stream.events.extend(self.appended)
        return await super().__call__(args, _ctx)


class AnnouncingStream(Stream):
    """Releases ``tool`` once a ``tool_called`` is stored: the call ran past its grace."""

    def __init__(self, events: Sequence[Event] = ()) -> None:
        super().__init__(events)
        self.tool: HeldTool | None = None

    async def publish(self, events: Sequence[Event], *, expected_last_seq: int) -> list[Ack]:
        acks = await super().publish(events, expected_last_seq=expected_last_seq)
        if self.tool is not None and any(isinstance(e, ToolCalled) for e in events):
            self.tool.release.set()
        return acks


def held_runner(ctx: ToolContext, tool: HeldTool, *, grace_s: float) -> ToolRunner:
    registry = ToolRegistry.builtin()
    registry.register(ToolSpec("held", "runs until released", EchoArgs), tool)
    return ToolRunner(registry, ctx, announce_after_s=grace_s)


async def test_a_call_without_side_effects_that_ends_within_its_grace_is_recorded_by_its_outcome(
    ctx: ToolContext,
) -> None:
    stream = Stream()
    tool = HeldTool(stream)
    tool.release.set()  # ends at once

    await deliver(
        scheduled(tool="held"), stream, held_runner(ctx, tool, grace_s=5.0), redelivered=False
    )

    assert stream.tags() == ["task_completed:-"]
    assert tool.log_sizes_at_call == [0]  # it ran before anything was stored
    assert only(stream, TaskCompleted).called_at == NOW


async def test_a_call_without_side_effects_still_running_after_its_grace_is_announced_meanwhile(
    ctx: ToolContext,
) -> None:
    stream = AnnouncingStream()
    tool = HeldTool(stream)
    stream.tool = tool  # released only once its tool_called is stored

    await deliver(
        scheduled(tool="held"), stream, held_runner(ctx, tool, grace_s=0.0), redelivered=False
    )

    assert stream.tags() == ["tool_called:1", "task_completed:-"]
    assert tool.log_sizes_at_call == [0]  # started before its tool_called was stored
    called, completed = stream.events
    assert isinstance(called, ToolCalled)
    assert called.occurred_at == NOW
    assert isinstance(completed, TaskCompleted)
    assert completed.called_at is None


async def test_a_refused_announcement_stops_the_running_call_and_drops_its_result(
    ctx: ToolContext,
) -> None:
    task = scheduled(tool="held")
    stream = AnnouncingStream([task])
    # While it runs, another replica (it took the delivery over) records attempt 1 as its own.
    tool = HeldTool(stream, decide.called(task, 1, task.args, other_replica(task)))

    with pytest.raises(TaskTakenOverError):
        await deliver(task, stream, held_runner(ctx, tool, grace_s=0.0), redelivered=False)

    assert tool.stopped
    assert stream.tags() == ["task_scheduled:-", "tool_called:1"]  # the other replica's
