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
from events.errors import DecodeError
from events.model import Event, Stamp
from events.timers import Wakeup, decode_wakeup, due_pattern, timer_headers
from services.executor import decide, waits
from services.rerun import RerunOptions, rerun_executor

T0 = datetime(2026, 12, 7, 6, 0, 0, 250_000, tzinfo=UTC)
PRODUCER = "executor@0.1.0"


def sleep_task(
    seconds: Any = 60, *, timeout_s: float = 3600.0, tool: str = "sleep"
) -> TaskScheduled:
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
        args={"seconds": seconds},
        timeout_s=timeout_s,
        max_attempts=3,
    )


def at(task: Event, seconds: float) -> Stamp:
    return Stamp.caused_by(task, producer=PRODUCER, now=T0 + timedelta(seconds=seconds))


def started(task: TaskScheduled) -> list[Event]:
    s = at(task, 0)
    return [decide.called(task, 1, task.args, s), waits.start_timer(task, 1, 60.0, s)]


def test_only_sleeps_longer_than_the_threshold_and_within_their_timeout_wait_durably() -> None:
    assert waits.durable_wait(sleep_task(60), 30) == 60.0
    # The benchmarks' sleeps (0 and 0.2 s) keep the in-process path at the default threshold.
    assert waits.durable_wait(sleep_task(0), 30) is None
    assert waits.durable_wait(sleep_task(0.2), 30) is None
    assert waits.durable_wait(sleep_task(30), 30) is None  # not longer than the threshold
    assert waits.durable_wait(sleep_task(60, timeout_s=45), 30) is None  # times out, as before
    assert waits.durable_wait(sleep_task("soon"), 30) is None  # the call reports the bad value
    assert waits.durable_wait(sleep_task(60, tool="echo"), 30) is None


def test_a_timer_is_due_its_seconds_after_it_started_and_fires_on_the_next_whole_second() -> None:
    task = sleep_task()
    timer = waits.start_timer(task, 1, 60.0, at(task, 0))
    assert timer.timer_id == timer.event_id
    assert timer.due_at == T0 + timedelta(seconds=60)
    assert due_pattern(timer.due_at) == "@at 2026-12-07T06:01:01Z"
    assert timer_headers(timer.timer_id, timer.due_at)["Nats-Schedule-Target"] == (
        "agora.intake.wakeup"
    )
    # The same attempt's timer, decided again after a crash, is the same timer.
    assert waits.start_timer(task, 1, 60.0, at(task, 5)).timer_id == timer.timer_id


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


async def test_a_goal_that_slept_on_a_timer_reruns_identically() -> None:
    task = sleep_task()
    log = started(task)
    timer = log[1]
    assert isinstance(timer, TimerStarted)
    record = decide.fold_task(log, 1, "s1")
    woken = waits.on_wakeup(task, record, timer.timer_id, at(timer, 61))
    assert isinstance(woken, waits.Finish)
    history = [task, *log, *woken.events]
    report = await rerun_executor(
        history, RerunOptions(planning=None, producer=PRODUCER), T0 + timedelta(days=30)
    )
    assert report.identical, report.differences
    assert report.rerun_decisions == 4  # tool_called, timer_started, timer_fired, completed
