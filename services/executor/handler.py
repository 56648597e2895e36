"""Executes one ``task_scheduled``: the imperative shell around ``decide``.

An attempt of a tool with side effects is announced (``tool_called``) and durably acknowledged
BEFORE the tool runs, and its outcome is published before the next step, so after a crash the
goal's log tells a redelivery exactly where to resume (see ``decide.plan_execution``). A tool
without side effects declares running it again harmless (``events.tools.CallRecord``): an
instant one (``echo``, ``calculator``) is recorded by its outcome alone; one that takes time
starts at once, and only if it still runs after a short grace is its ``tool_called`` written,
while it runs. A crash before such a call's outcome runs it again.

Several executor replicas share one durable consumer, and a replica that stalls past the ack
wait (a long GC pause, SIGSTOP) loses its delivery to another one while it still believes it
owns the task. So every write is guarded by the goal's last known stream sequence: the stream
refuses it if anything was appended to the goal meanwhile. The writer then catches up; if
another replica wrote events of this task, it stands down — before running the tool, or
discarding a late result — so an attempt's tool runs at most once and a task never gets two
different outcomes. Writes of other tasks of the goal only cause a retry.

A ``sleep`` longer than the timers' threshold (or a ``wait_until`` further away) runs no tool
here: its attempt records ``timer_started`` beside its ``tool_called``, arms a durable timer and
returns, so the delivery is acked; ``wake_task`` finishes it when the timer's wake-up comes
(services/executor/waits.py). The wake-up of a timer a ReAct task's call waits on is decided
here too (services/executor/react_waits.py): it records the call's result, and the executor
resumes the task on that ``timer_fired``.

A cancelled goal's task runs nothing more: ``goal_cancelled`` stops a tool call that runs
(services/executor/cancellations.py), and a write refused because it came after the
cancellation finds it in the goal's newer events. Either way the task ends with
``task_cancelled``, and a result that arrived too late is dropped. A task of an iteration a
message interrupted (``iteration_interrupted``) ends the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from events.catalog import TaskScheduled
from events.errors import AgoraError, ConcurrentWriteError, EventTooLargeError, ToolError
from events.model import Event, Stamp
from events.tools import REACT_TOOL, CallRecord
from services.executor import decide, react_record, react_waits, waits
from services.executor.cancellations import (
    CANCELLED,
    Cancellations,
    Declined,
    Grace,
    Stopped,
    unless_cancelled,
)
from services.executor.ports import GoalLog, Publish, Timers
from services.executor.runner import ToolRunner
from services.executor.tools.context import ToolResult

__all__ = ["TaskTakenOverError", "execute_task", "wake_cancelled_timers", "wake_task"]

_DEFAULT_BACKOFF = decide.Backoff()

_log = structlog.get_logger("agora.executor")


class TaskTakenOverError(AgoraError):
    """Another replica is working on this task; the delivery comes back later (nak)."""


@dataclass
class _TaskWriter:
    """Appends one task's events, guarded; notices when another replica writes to the task."""

    task: TaskScheduled
    log: GoalLog
    publish: Publish
    last_seq: int
    history: list[Event] = field(default_factory=list)
    mine: set[str] = field(default_factory=set)
    # Set when a refused write found the goal cancelled or the iteration interrupted: the
    # task stops (give_way).
    stop: decide.TaskStop | None = None

    def _foreign(self, event: Event) -> bool:
        return (
            getattr(event, "iteration", None) == self.task.iteration
            and getattr(event, "task_id", None) == self.task.task_id
            and event.event_id not in self.mine
        )

    async def write(self, events: Sequence[Event], *, stopping: bool = False) -> bool:
        """True once stored; False if another replica wrote events of this task first, or
        (unless ``stopping``: writing the task's stop) the goal was cancelled meanwhile."""
        while True:
            try:
                acks = await self.publish(events, expected_last_seq=self.last_seq)
            except ConcurrentWriteError:
                newer = await self.log.since(self.task.goal_id, self.last_seq)
                self.history += newer.events
                self.last_seq = newer.last_seq
                if any(self._foreign(event) for event in newer.events):
                    return False
                stop = decide.stop_of(newer.events, self.task.iteration)
                if stop is not None and not stopping:
                    self.stop = stop
                    return False
                continue
            if any(
                ack.duplicate and e.event_id not in self.mine
                for ack, e in zip(acks, events, strict=True)
            ):
                return False  # the very same event was stored by another replica
            self.mine.update(event.event_id for event in events)
            self.history += events
            seqs = [ack.seq for ack in acks]
            # Back to back: nothing else came in between, the goal's last event is ours.
            contiguous = seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            self.last_seq = seqs[-1] if contiguous else seqs[0]
            return True

    async def give_way(self, attempts: int, spent_ms: float, stamp: Stamp) -> None:
        """A write did not go through: record the task's stop if its goal was cancelled (or
        its iteration interrupted), else another replica owns the task (``stand_down``)."""
        if self.stop is not None:
            stop = decide.stopped(self.task, self.stop, attempts, spent_ms, stamp)
            if await self.write([stop], stopping=True):
                return
        self.stand_down()

    async def record_stop(self, attempts: int, spent_ms: float, stamp: Stamp, reason: str) -> None:
        """The running call was stopped because the goal was cancelled or the iteration
        interrupted (``reason`` says which): record it."""
        stop = decide.cancelled(self.task, attempts, spent_ms, stamp, reason=reason)
        if not await self.write([stop], stopping=True):
            self.stand_down()

    def stand_down(self) -> None:
        """Another replica owns the task: done if it is finished, otherwise come back later."""
        record = decide.fold_task(self.history, self.task.iteration, self.task.task_id)
        if not record.finished:
            raise TaskTakenOverError(
                f"task {self.task.task_id} of goal {self.task.goal_id} is being run by "
                "another executor"
            )


async def execute_task(
    task: TaskScheduled,
    *,
    task_seq: int,
    redelivered: bool,
    runner: ToolRunner,
    log: GoalLog,
    publish: Publish,
    now: Callable[[], datetime],
    producer: str,
    cancellations: Cancellations | None = None,
    timers: Timers | None = None,
    backoff: decide.Backoff = _DEFAULT_BACKOFF,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``task`` (stored at stream sequence ``task_seq``) to task_completed or task_failed
    (or task_cancelled, when its goal is cancelled: ``cancellations`` stops a running call).

    On a first delivery nothing of the task can be recorded yet, so the log read is skipped.
    Raises if publishing or the log fails, or another replica took the task over; the consume
    loop then naks and the redelivery resumes from the log.
    """

    def stamp() -> Stamp:
        return Stamp.caused_by(task, producer=producer, now=now())

    writer = _TaskWriter(task, log, publish, last_seq=task_seq)
    if redelivered:
        recorded = await log.load(task.goal_id)
        writer.history, writer.last_seq = list(recorded.events), recorded.last_seq
    record = decide.fold_task(writer.history, task.iteration, task.task_id)

    decided = stamp()
    match decide.plan_execution(task, record, decided):
        case decide.AlreadyFinished():
            return
        case decide.FinishFromRecord(events=events):
            if not await writer.write(events):
                await writer.give_way(record.attempts_made, record.tool_duration_ms, stamp())
        case decide.AwaitTimer(timer=timer):
            # Recorded before a crash kept it from being armed (or armed already: harmless).
            assert timers is not None, "a task waits for a timer, but timers are not wired"
            await timers.arm(timer)
        case decide.Run() as run if timers is not None and (
            wait := waits.durable_wait(task, timers.threshold_s, decided.occurred_at)
        ):
            await _wait_durably(task, run, wait, writer=writer, stamp=decided, timers=timers)
        case decide.Run() as run:
            await _run_watched(
                task,
                run,
                runner=runner,
                writer=writer,
                stamp=stamp,
                heard=cancellations or Cancellations(),
                retries=_Retries(timers, backoff, sleep),
                monotonic=monotonic,
            )


@dataclass(frozen=True, slots=True)
class _Retries:
    """How an attempt that failed transiently waits for the next one: in process (``sleep``),
    or, when the backoff is longer than the timers' threshold, on a durable timer."""

    timers: Timers | None
    backoff: decide.Backoff
    sleep: Callable[[float], Awaitable[object]]

    def durable(self, delay: float) -> Timers | None:
        timers = self.timers
        return timers if timers is not None and delay > timers.threshold_s else None


async def _run_watched(
    task: TaskScheduled,
    run: decide.Run,
    *,
    runner: ToolRunner,
    writer: _TaskWriter,
    stamp: Callable[[], Stamp],
    heard: Cancellations,
    retries: _Retries,
    monotonic: Callable[[], float],
) -> None:
    """Run the attempts of ``run``, stopped by a cancellation (or interruption) heard."""
    with _tool_calls(task, runner, heard) as call:
        await _run_attempts(
            task,
            run,
            call=call,
            runner=runner,
            writer=writer,
            stamp=stamp,
            why_stopped=lambda: heard.reason(task.goal_id, task.iteration),
            retries=retries,
            monotonic=monotonic,
        )


# What calls a task's tool once; with a grace, a call still running past it runs ``then()``.
_ToolCall = Callable[[Grace | None], Awaitable[ToolResult | Stopped | Declined]]


@contextlib.contextmanager
def _tool_calls(
    task: TaskScheduled, runner: ToolRunner, heard: Cancellations
) -> Iterator[_ToolCall]:
    """What calls ``task``'s tool once: its result, or ``CANCELLED`` when the goal is heard
    cancelled (or the iteration interrupted) first, which stops a running call; or
    ``DECLINED`` when its grace's ``then()`` refused, which stops it too."""
    goal_id, iteration = task.goal_id, task.iteration
    if runner.is_instant(task.tool):
        # Nothing could stop it midway: whether to run it at all is all there is to check; it
        # never runs past a grace.
        async def call_instant(grace: Grace | None) -> ToolResult | Stopped | Declined:
            del grace
            if heard.stops(goal_id, iteration):
                return CANCELLED
            return await runner.invoke(task.tool, task.args, task.timeout_s)

        yield call_instant
        return
    with heard.watch(goal_id, iteration) as cancelled:

        async def call(grace: Grace | None) -> ToolResult | Stopped | Declined:
            invoked = runner.invoke(task.tool, task.args, task.timeout_s)
            if grace is None:
                return await unless_cancelled(invoked, cancelled)
            return await unless_cancelled(invoked, cancelled, grace)

        yield call


async def _wait_durably(
    task: TaskScheduled,
    run: decide.Run,
    wait: waits.DurableWait,
    *,
    writer: _TaskWriter,
    stamp: Stamp,
    timers: Timers,
) -> None:
    """The attempt waits as a durable timer: recorded before it is armed, so a crash in
    between re-arms it on the redelivery (``decide.AwaitTimer``); then the delivery is acked."""
    attempt = run.first_attempt
    timer = waits.start_timer(task, attempt, wait, stamp)
    if not await writer.write(
        [*run.prelude, decide.called(task, attempt, task.args, stamp), timer]
    ):
        await writer.give_way(attempt - 1, run.tool_duration_ms, stamp)
        return
    await timers.arm(timer)


async def _run_attempts(
    task: TaskScheduled,
    run: decide.Run,
    *,
    call: _ToolCall,
    runner: ToolRunner,
    writer: _TaskWriter,
    stamp: Callable[[], Stamp],
    why_stopped: Callable[[], str],
    retries: _Retries,
    monotonic: Callable[[], float],
) -> None:
    """Call the tool (``call``: the attempt's result, or ``CANCELLED`` when its goal was
    cancelled first) attempt after attempt, each recorded as the tool's ``CallRecord`` says:
    announced (``tool_called``) before it runs, or while it runs once past its grace, or by its
    outcome alone, which then says when it was called."""
    attempt = run.first_attempt
    spent_ms = run.tool_duration_ms
    refusal = runner.permits(task.tool, task.allowed_tools)
    if refusal is not None:
        # Untrusted and not granted: nothing runs, the task fails for good with the reason.
        gave_up = decide.failed(task, refusal, attempt - 1, spent_ms, stamp(), transient=False)
        if not await writer.write([*run.prelude, gave_up]):
            await writer.give_way(attempt - 1, spent_ms, stamp())
        return
    # A plain task's start is its first tool_called: no task_started of its own.
    announcements: list[Event] = list(run.prelude)
    while True:
        calling = stamp()
        recording = runner.call_record(task.tool)
        # The attempt's tool_called, built only when it is written.
        announce = functools.partial(decide.called, task, attempt, task.args, calling)
        if recording is CallRecord.BEFORE_RUN:
            announcements.append(announce())
        # Without a call to announce first, only an earlier attempt's interruption (a log of
        # an older executor) is written first.
        if announcements and not await writer.write(announcements):
            # The attempt is someone else's, or the goal was cancelled: never run its tool.
            await writer.give_way(attempt - 1, spent_ms, stamp())
            return
        announcements = []
        began = monotonic()
        called = await _call_recorded(
            call,
            recording,
            announce,
            writer=writer,
            grace_s=runner.announce_after_s,
        )
        if called is None:
            # The claim was refused: the call was stopped, its result is dropped.
            await writer.give_way(attempt - 1, spent_ms, stamp())
            return
        result, announced = called
        # Set on the outcome of a call no tool_called recorded: when it began.
        called_at = None if announced else calling.occurred_at
        duration_ms = (monotonic() - began) * 1000
        spent_ms += duration_ms
        if isinstance(result, ToolError):
            if not await _after_failure(
                task,
                attempt,
                result,
                duration_ms,
                spent_ms,
                writer=writer,
                stamp=stamp(),
                retries=retries,
                called_at=called_at,
            ):
                return
            attempt += 1
            continue
        if result is CANCELLED:
            # An attempt no tool_called recorded does not count: as far as the log goes, it
            # was not called.
            counted = attempt if announced else attempt - 1
            await writer.record_stop(counted, spent_ms, stamp(), why_stopped())
            return
        assert isinstance(result, ToolResult)
        # The attempt's return and the task's completion are one event for a plain task.
        outcome = [
            decide.completed(
                task,
                result.text,
                attempt,
                spent_ms,
                stamp(),
                attempt_duration_ms=duration_ms,
                structured=result.structured,
                called_at=called_at,
            )
        ]
        try:
            written = await writer.write(outcome)
        except EventTooLargeError as exc:
            # Cannot be recorded however often it is retried: the task fails for good, with
            # the reason, and the planner ends the goal.
            gave_up = decide.failed(task, str(exc), attempt, spent_ms, stamp(), transient=False)
            written = await writer.write([gave_up])
        if not written:
            # Taken over while the tool ran (this replica stalled past the ack wait): the
            # other replica has recorded this attempt as interrupted; or the goal was
            # cancelled meanwhile. Either way the result is dropped.
            await writer.give_way(attempt, spent_ms, stamp())
        return


async def _call_recorded(
    call: _ToolCall,
    recording: CallRecord,
    announce: Callable[[], Event],
    *,
    writer: _TaskWriter,
    grace_s: float,
) -> tuple[ToolResult | Stopped | ToolError, bool] | None:
    """One attempt's call, its announcement (``announce()``: ``tool_called``) written already
    if ``recording`` is ``BEFORE_RUN``, or while it runs if it is ``WHILE_RUNNING`` and it runs
    past ``grace_s``: its result (the tool's error, if it failed) and whether a ``tool_called``
    records it; None if that announcement was refused (the call is then stopped).

    The outcome's write is guarded on the goal's last sequence, which the announcement's
    acknowledgement gives, so a call that ends within the grace goes without one: its outcome
    alone records it, in one write instead of two in a row (docs/performance.md)."""
    announced = recording is CallRecord.BEFORE_RUN

    async def announce_now() -> bool:
        nonlocal announced
        announced = await writer.write([announce()])
        return announced

    grace = Grace(grace_s, announce_now) if recording is CallRecord.WHILE_RUNNING else None
    try:
        result = await call(grace)
    except ToolError as error:
        return error, announced
    if isinstance(result, Declined):
        return None
    return result, announced


async def _after_failure(
    task: TaskScheduled,
    attempt: int,
    error: ToolError,
    duration_ms: float,
    spent_ms: float,
    *,
    writer: _TaskWriter,
    stamp: Stamp,
    retries: _Retries,
    called_at: datetime | None,
) -> bool:
    """Record ``attempt``'s failure (``called_at``: when it was called, if no tool_called
    recorded that); True once the next attempt may run here and now."""
    failure = decide.tool_failed(task, attempt, error, duration_ms, stamp, called_at=called_at)
    delay = decide.next_attempt_delay(error, attempt, task.max_attempts, retries.backoff)
    if delay is None:
        gave_up = decide.failed(
            task, str(error), attempt, spent_ms, stamp, transient=error.transient
        )
        if not await writer.write([failure, gave_up]):
            await writer.give_way(attempt, spent_ms, stamp)
        return False
    timers = retries.durable(delay)
    # A long backoff holds nothing: recorded with the failure, armed, and the delivery acked;
    # its wake-up runs the next attempt (wake_task).
    backoff = [] if timers is None else [waits.retry_timer(task, attempt + 1, delay, stamp)]
    if not await writer.write([failure, *backoff]):
        await writer.give_way(attempt, spent_ms, stamp)
        return False
    if timers is not None:
        await timers.arm(backoff[0])
        return False
    await retries.sleep(delay)
    return True


async def wake_task(
    goal_id: str,
    timer_id: str,
    *,
    log: GoalLog,
    publish: Publish,
    timers: Timers,
    now: Callable[[], datetime],
    producer: str,
    runner: ToolRunner,
    cancellations: Cancellations | None = None,
    backoff: decide.Backoff = _DEFAULT_BACKOFF,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Handle the wake-up of durable timer ``timer_id`` of goal ``goal_id``: decided from the
    goal's log (``waits.on_wakeup``), written guarded like every write of the task. A backoff's
    wake-up runs the task's next attempt here, as ``execute_task`` would have."""
    recorded = await log.load(goal_id)
    found = waits.timer_of(recorded.events, timer_id)
    if found is None:
        _log.warning("wakeup_ignored", goal_id=goal_id, timer_id=timer_id, reason="no such timer")
        return
    task, timer = found
    writer = _TaskWriter(
        task, log, publish, last_seq=recorded.last_seq, history=list(recorded.events)
    )
    record = decide.fold_task(writer.history, task.iteration, task.task_id)

    def stamped() -> Stamp:
        return Stamp.caused_by(timer, producer=producer, now=now())

    stamp = stamped()
    match _wake_decision(task, writer.history, record, timer_id, stamp):
        case waits.Ignore(reason=reason):
            _log.info("wakeup_ignored", goal_id=goal_id, timer_id=timer_id, reason=reason)
        case waits.Rearm(timer=early):
            _log.info("wakeup_early", goal_id=goal_id, timer_id=timer_id, due_at=str(early.due_at))
            # A new copy: the one that fired has the timer's own id, and arming under that id
            # again within the duplicate window would store nothing, so nothing would wake it.
            await timers.arm(early, copy=f"early-{stamp.occurred_at.timestamp():.6f}")
        case waits.Retry(run=run):
            # Another copy of this wake-up running the same attempt loses the guarded write of
            # its tool_called and stands down: the attempt runs once.
            await _run_watched(
                task,
                run,
                runner=runner,
                writer=writer,
                stamp=stamped,
                heard=cancellations or Cancellations(),
                retries=_Retries(timers, backoff, sleep),
                monotonic=monotonic,
            )
        case waits.Finish(events=events):
            if not await writer.write(events):
                # Another copy of this wake-up wrote the task's end, or the goal was cancelled.
                await writer.give_way(record.attempts_made, record.tool_duration_ms, stamp)


def _wake_decision(
    task: TaskScheduled,
    history: Sequence[Event],
    record: decide.TaskRecord,
    timer_id: str,
    stamp: Stamp,
) -> waits.WakeDecision:
    if task.tool == REACT_TOOL:
        calls = react_record.fold_react(history, task.iteration, task.task_id)
        return react_waits.on_call_wakeup(task, calls, record.stop, timer_id, stamp)
    return waits.on_wakeup(task, record, timer_id, stamp)


async def wake_cancelled_timers(goal_id: str, *, log: GoalLog, timers: Timers) -> None:
    """The goal was cancelled: wake every task of it that waits on a durable timer, so each
    ends with ``task_cancelled`` now rather than when its timer falls due."""
    recorded = await log.load(goal_id)
    for timer in waits.pending_timers(recorded.events):
        await timers.wake_now(timer)
