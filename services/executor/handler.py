"""Executes one ``task_scheduled``: the imperative shell around ``decide``.

Every attempt is announced (``tool_called``) and durably acknowledged BEFORE the tool runs, and
its outcome is published before the next step, so after a crash the goal's log tells a
redelivery exactly where to resume (see ``decide.plan_execution``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from events.catalog import TaskScheduled
from events.errors import ToolError
from events.model import Event, Stamp
from services.executor import decide
from services.executor.ports import GoalLog, Publish
from services.executor.runner import ToolRunner

__all__ = ["execute_task"]


async def execute_task(
    task: TaskScheduled,
    *,
    redelivered: bool,
    runner: ToolRunner,
    log: GoalLog,
    publish: Publish,
    now: Callable[[], datetime],
    producer: str,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``task`` to task_completed or task_failed, publishing every step.

    On a first delivery nothing can be recorded yet, so the log read is skipped. Raises only
    if publishing or the log fails; the consume loop then naks and the redelivery resumes.
    """

    def stamp() -> Stamp:
        return Stamp.caused_by(task, producer=producer, now=now())

    if redelivered:
        history = await log.load(task.goal_id)
        record = decide.fold_task(history, task.iteration, task.task_id)
    else:
        record = decide.TaskRecord(iteration=task.iteration, task_id=task.task_id)

    match decide.plan_execution(task, record, stamp()):
        case decide.AlreadyFinished():
            return
        case decide.FinishFromRecord(events=events):
            await publish(events)
        case decide.Run() as run:
            await _run_attempts(
                task,
                run,
                runner=runner,
                publish=publish,
                stamp=stamp,
                sleep=sleep,
                monotonic=monotonic,
            )


async def _run_attempts(
    task: TaskScheduled,
    run: decide.Run,
    *,
    runner: ToolRunner,
    publish: Publish,
    stamp: Callable[[], Stamp],
    sleep: Callable[[float], Awaitable[object]],
    monotonic: Callable[[], float],
) -> None:
    attempt = run.first_attempt
    spent_ms = run.tool_duration_ms
    announcements: list[Event] = list(run.prelude)
    if run.announce_start:
        announcements.append(decide.started(task, attempt, stamp()))
    while True:
        await publish([*announcements, decide.called(task, attempt, task.args, stamp())])
        announcements = []
        began = monotonic()
        try:
            output = await runner.call(task.tool, task.args, task.timeout_s)
        except ToolError as error:
            duration_ms = (monotonic() - began) * 1000
            spent_ms += duration_ms
            failure = decide.tool_failed(task, attempt, error, duration_ms, stamp())
            delay = decide.next_attempt_delay(error, attempt, task.max_attempts)
            if delay is None:
                gave_up = decide.failed(task, str(error), attempt, spent_ms, stamp())
                await publish([failure, gave_up])
                return
            await publish([failure])
            await sleep(delay)
            attempt += 1
            continue
        duration_ms = (monotonic() - began) * 1000
        spent_ms += duration_ms
        await publish(
            [
                decide.returned(task, attempt, output, duration_ms, stamp()),
                decide.completed(task, output, attempt, spent_ms, stamp()),
            ]
        )
        return
