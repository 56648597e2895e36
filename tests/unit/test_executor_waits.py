"""Durable waits, pure: which sleeps wait as timers, and what a timer's wake-up does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.catalog import (
    GoalCancelled,
    TaskCancelled,
    TaskCompleted,
    TaskScheduled,
    TimerFired,
    TimerStarted,
)
from events.errors import DecodeError, ToolError
from events.model import Event, Stamp
from events.timers import Wakeup, decode_wakeup, due_pattern, timer_headers
from services.executor import decide, waits
from services.rerun import RerunOptions, rerun_executor

T0 = datetime(2026, 12, 7, 6, 0, 0, 250_000, tzinfo=UTC)
PRODUCER = "executor@0.1.0"


def sleep_task(
    seconds: Any = 60, *, timeout_s: float = 3600.0, tool: str = "sleep"
) -> TaskScheduled:
    return task_of(tool, {"seconds": seconds}, timeout_s=timeout_s)


def wait_task(moment: Any) -> TaskScheduled:
    return task_of("wait_until", {"at": moment}, timeout_s=30.0)


def task_of(tool: str, args: dict[str, Any], *, timeout_s: float) -> TaskScheduled:
    return TaskScheduled(
        event_id="sched-s1",
        goal_id="g-1",
        occurred_at=T0,
        causation_id="plan-1",
        correlation_id="g-1",
        producer="planner@0.1.0",
        iteration=1,
        task_id="s1",
        description="wait",
        tool=tool,
        args=args,
        timeout_s=timeout_s,
        max_attempts=3,
    )


def at(task: Event, seconds: float) -> Stamp:
    return Stamp.caused_by(task, producer=PRODUCER, now=T0 + timedelta(seconds=seconds))


def started(task: TaskScheduled) -> list[Event]:
    s = at(task, 0)
    wait = waits.durable_wait(task, 30, s.occurred_at)
    assert wait is not None
    return [decide.called(task, 1, task.args, s), waits.start_timer(task, 1, wait, s)]


def test_only_sleeps_longer_than_the_threshold_and_within_their_timeout_wait_durably() -> None:
    assert waits.durable_wait(sleep_task(60), 30, T0) == waits.DurableWait(
        T0 + timedelta(seconds=60), 60.0
    )
    # The benchmarks' sleeps (0 and 0.2 s) keep the in-process path at the default threshold.
    assert waits.durable_wait(sleep_task(0), 30, T0) is None
    assert waits.durable_wait(sleep_task(0.2), 30, T0) is None
    assert waits.durable_wait(sleep_task(30), 30, T0) is None  # not longer than the threshold
    # Longer than its timeout: it times out in process, as before.
    assert waits.durable_wait(sleep_task(60, timeout_s=45), 30, T0) is None
    assert waits.durable_wait(sleep_task("soon"), 30, T0) is None  # the call reports it
    assert waits.durable_wait(sleep_task(60, tool="echo"), 30, T0) is None


def test_a_wait_until_further_than_the_threshold_waits_durably_for_exactly_its_time() -> None:
    moment = T0 + timedelta(days=17, microseconds=-250_000)
    wait = waits.durable_wait(wait_task("2026-12-24T06:00:00Z"), 30, T0)
    # Its timeout (30 s here) bounds a call that runs: a timer runs nothing.
    assert wait == waits.DurableWait(moment, (moment - T0).total_seconds())
    # In another zone, the same moment.
    assert waits.durable_wait(wait_task("2026-12-24T07:00:00+01:00"), 30, T0) == wait
    # Near or past: in process, where a time that has passed is reached at once.
    assert waits.durable_wait(wait_task("2026-12-07T06:00:30Z"), 30, T0) is None
    assert waits.durable_wait(wait_task("2020-01-01T00:00:00Z"), 30, T0) is None
    assert waits.durable_wait(wait_task("soon"), 30, T0) is None  # the call reports it


def test_a_timer_is_due_its_seconds_after_it_started_and_fires_on_the_next_whole_second() -> None:
    task = sleep_task()
    timer = started(task)[1]
    assert isinstance(timer, TimerStarted)
    assert timer.timer_id == timer.event_id
    assert timer.due_at == T0 + timedelta(seconds=60)
    assert due_pattern(timer.due_at) == "@at 2026-12-07T06:01:01Z"
    headers = timer_headers(timer.timer_id, timer.due_at)
    assert headers["Nats-Schedule-Target"] == "agora.intake.wakeup"
    # Kept past the intake stream's age limit until it fires.
    assert headers["Nats-TTL"] == "never"
    # The same attempt's timer, decided again after a crash, is the same timer.
    again = waits.DurableWait(T0 + timedelta(seconds=65), 60.0)
    assert waits.start_timer(task, 1, again, at(task, 5)).timer_id == timer.timer_id


def test_a_wait_until_wakes_with_the_output_it_has_in_process() -> None:
    task = wait_task("2026-12-24T07:00:00+01:00")
    log = started(task)
    timer = log[1]
    assert isinstance(timer, TimerStarted)
    assert (timer.purpose, timer.tool) == ("wait_until", "wait_until")
    woken = waits.on_wakeup(task, decide.fold_task(log, 1, "s1"), timer.timer_id, at(timer, 1e7))
    assert isinstance(woken, waits.Finish)
    done = woken.events[1]
    assert isinstance(done, TaskCompleted)
    assert done.output == "waited until 2026-12-24T06:00:00Z"
    # Woken early (a clock ahead of the server's): armed again, nothing completes.
    early = waits.on_wakeup(task, decide.fold_task(log, 1, "s1"), timer.timer_id, at(timer, 60))
    assert isinstance(early, waits.Rearm)


def test_a_redelivered_task_whose_timer_is_recorded_arms_it_again_and_runs_nothing() -> None:
    task = sleep_task()
    record = decide.fold_task(started(task), 1, "s1")
    execution = decide.plan_execution(task, record, at(task, 1))
    assert isinstance(execution, decide.AwaitTimer)
    assert execution.timer == started(task)[1]


def test_a_wakeup_when_due_writes_the_firing_and_the_completion_with_stable_ids() -> None:
    task = sleep_task()
    log = started(task)
    timer = log[1]
    assert isinstance(timer, TimerStarted)
    record = decide.fold_task(log, 1, "s1")
    first = waits.on_wakeup(task, record, timer.timer_id, at(timer, 60.5))
    again = waits.on_wakeup(task, record, timer.timer_id, at(timer, 75))
    assert isinstance(first, waits.Finish)
    assert isinstance(again, waits.Finish)
    fired, done = first.events
    assert isinstance(fired, TimerFired)
    assert isinstance(done, TaskCompleted)
    assert (done.output, done.attempts, done.attempt_duration_ms) == ("slept 60s", 1, 60_500.0)
    assert fired.late_ms == 500.0
    # A second copy of the wake-up decides the same events: the stream keeps one of each.
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]


def test_a_wakeup_for_a_finished_task_or_another_timer_is_ignored_with_the_reason() -> None:
    task = sleep_task()
    log = started(task)
    timer = log[1]
    assert isinstance(timer, TimerStarted)
    finished = decide.fold_task(
        [*log, decide.completed(task, "slept 60s", 1, 60_000.0, at(task, 60))], 1, "s1"
    )
    ignored = waits.on_wakeup(task, finished, timer.timer_id, at(timer, 61))
    assert isinstance(ignored, waits.Ignore)
    assert "already finished" in ignored.reason
    other = waits.on_wakeup(task, decide.fold_task(log, 1, "s1"), "t-other", at(timer, 61))
    assert isinstance(other, waits.Ignore)


def test_an_early_wakeup_arms_the_timer_again() -> None:
    task = sleep_task()
    log = started(task)
    timer = log[1]
    assert isinstance(timer, TimerStarted)
    early = waits.on_wakeup(task, decide.fold_task(log, 1, "s1"), timer.timer_id, at(timer, 30))
    assert early == waits.Rearm(timer)


def test_a_cancelled_goals_waiting_task_is_cancelled_and_no_longer_pending() -> None:
    task = sleep_task()
    log = started(task)
    timer = log[1]
    assert isinstance(timer, TimerStarted)
    cancel = GoalCancelled(**at(task, 10).envelope("goal_cancelled", "outcome"), command_id="c")
    cancelled_log = [*log, cancel]
    assert waits.pending_timers(cancelled_log) == [timer]
    woken = waits.on_wakeup(
        task, decide.fold_task(cancelled_log, 1, "s1"), timer.timer_id, at(timer, 11)
    )
    assert isinstance(woken, waits.Finish)
    (stop,) = woken.events
    assert isinstance(stop, TaskCancelled)
    assert waits.pending_timers([*cancelled_log, stop]) == []


@pytest.mark.parametrize(
    "bad",
    [
        b"{",
        b"[]",
        b'{"goal_id": "g.1", "timer_id": "t"}',
        b'{"goal_id": "g", "timer_id": "t", "x": 1}',
        b"[" * 100_000,
    ],
)
def test_a_wakeup_that_is_not_a_timer_message_is_a_decode_error(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_wakeup(bad)


def test_a_wakeup_round_trips() -> None:
    wakeup = Wakeup(goal_id="g-1", timer_id="t-1")
    assert decode_wakeup(wakeup.encode()) == wakeup


@pytest.mark.parametrize("task", [sleep_task(), wait_task("2026-12-24T06:00:00Z")])
async def test_a_goal_that_waited_on_a_timer_reruns_identically(task: TaskScheduled) -> None:
    log = started(task)
    timer = log[1]
    assert isinstance(timer, TimerStarted)
    record = decide.fold_task(log, 1, "s1")
    woken = waits.on_wakeup(task, record, timer.timer_id, at(timer, timer.seconds + 1))
    assert isinstance(woken, waits.Finish)
    history = [task, *log, *woken.events]
    report = await rerun_executor(
        history, RerunOptions(planning=None, producer=PRODUCER), T0 + timedelta(days=30)
    )
    assert report.identical, report.differences
    assert report.rerun_decisions == 4  # tool_called, timer_started, timer_fired, completed


def fetch_task() -> TaskScheduled:
    return task_of("http_get", {"url": "https://example.com"}, timeout_s=30.0)


def backing_off(task: TaskScheduled) -> list[Event]:
    """Attempt 1 called and failed transiently; attempt 2 waits 40 s for its backoff."""
    s = at(task, 0)
    busy = decide.tool_failed(task, 1, ToolError("503", transient=True), 5.0, at(task, 1))
    return [decide.called(task, 1, task.args, s), busy, waits.retry_timer(task, 2, 40.0, s)]


def test_the_backoff_doubles_per_attempt_from_its_first_wait_up_to_its_longest() -> None:
    backoff = decide.Backoff(first_s=60.0, max_s=300.0)
    delays = [
        decide.next_attempt_delay(ToolError("503", transient=True), n, 9, backoff)
        for n in range(1, 6)
    ]
    assert delays == [60.0, 120.0, 240.0, 300.0, 300.0]


def test_a_redelivered_task_waiting_for_its_backoff_arms_it_again_and_runs_nothing() -> None:
    task = fetch_task()
    log = backing_off(task)
    execution = decide.plan_execution(task, decide.fold_task(log, 1, "s1"), at(task, 3))
    assert execution == decide.AwaitTimer(log[2])  # type: ignore[arg-type]
    timer = log[2]
    assert isinstance(timer, TimerStarted)
    assert (timer.purpose, timer.attempt, timer.due_at) == ("retry", 2, T0 + timedelta(seconds=40))
    # Not the id a long sleep's timer of attempt 2 would have.
    own = waits.start_timer(task, 2, waits.DurableWait(timer.due_at, 40.0), at(task, 0))
    assert timer.timer_id != own.timer_id


def test_a_backoffs_wakeup_runs_the_next_attempt_once() -> None:
    task = fetch_task()
    log = backing_off(task)
    timer = log[2]
    assert isinstance(timer, TimerStarted)
    record = decide.fold_task(log, 1, "s1")
    assert isinstance(waits.on_wakeup(task, record, timer.timer_id, at(task, 20)), waits.Rearm)
    woken = waits.on_wakeup(task, record, timer.timer_id, at(task, 41))
    assert isinstance(woken, waits.Retry)
    assert (woken.run.first_attempt, woken.run.tool_duration_ms) == (2, 5.0)
    (fired,) = woken.run.prelude
    assert isinstance(fired, TimerFired)
    assert fired.late_ms == 1000.0
    # A second copy of the wake-up finds attempt 2 called: it is not run twice.
    second = [*log, fired, decide.called(task, 2, task.args, at(task, 41))]
    again = waits.on_wakeup(task, decide.fold_task(second, 1, "s1"), timer.timer_id, at(task, 42))
    assert isinstance(again, waits.Ignore)
    # Nor does a redelivery of the task run it: attempt 2 is in flight (or was interrupted).
    assert decide.plan_execution(task, decide.fold_task(second, 1, "s1"), at(task, 42)) == (
        decide.Run(
            first_attempt=3,
            prelude=(
                decide.tool_failed(
                    task, 2, ToolError(decide.INTERRUPTED_ERROR, transient=True), 0.0, at(task, 42)
                ),
            ),
            tool_duration_ms=5.0,
        )
    )


def test_a_cancel_during_a_backoff_ends_the_task_at_the_wakeup() -> None:
    task = fetch_task()
    log = backing_off(task)
    timer = log[2]
    assert isinstance(timer, TimerStarted)
    cancel = GoalCancelled(**at(task, 10).envelope("goal_cancelled", "outcome"), command_id="c")
    cancelled_log = [*log, cancel]
    assert waits.pending_timers(cancelled_log) == [timer]
    woken = waits.on_wakeup(
        task, decide.fold_task(cancelled_log, 1, "s1"), timer.timer_id, at(task, 11)
    )
    assert isinstance(woken, waits.Finish)
    (stop,) = woken.events
    assert isinstance(stop, TaskCancelled)
    assert stop.attempts == 1


async def test_a_task_retried_after_a_durable_backoff_reruns_identically() -> None:
    task = fetch_task()
    log = backing_off(task)
    timer = log[2]
    assert isinstance(timer, TimerStarted)
    woken = waits.on_wakeup(task, decide.fold_task(log, 1, "s1"), timer.timer_id, at(task, 41))
    assert isinstance(woken, waits.Retry)
    second = [
        *woken.run.prelude,
        decide.called(task, 2, task.args, at(task, 41)),
        decide.completed(task, "ok", 2, 9.0, at(task, 42), attempt_duration_ms=4.0),
    ]
    options = RerunOptions(
        planning=None, producer=PRODUCER, backoff=decide.Backoff(first_s=40.0, max_s=300.0)
    )
    report = await rerun_executor([task, *log, *second], options, T0 + timedelta(days=30))
    assert report.identical, report.differences
    assert report.rerun_decisions == 6
