"""The planner's own work per standard goal, without the bus: CPU time in one process.

python -m bench.planner_handler [--goals 4000] [--profile]

Drives the planner's handlers (services/planner/handler.py: intake, then every decision) over
in-memory ports, as the live service drives them over the bus: the goal command is admitted,
its goal_accepted delivered, each step's task_completed and the verdict handed back in turn.
No other process shares the measurement, so it resolves changes of a few microseconds that
``bench.profile`` on a shared box cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from bench.platform import standard_goal
from events.catalog import EvaluationCompleted, EvaluationRequested, TaskCompleted, TaskScheduled
from events.model import Event, Stamp
from tests.unit.planner_harness import handler_pair


class _Log:
    """The ports: the events the last handling appended, nothing else kept (the unit tests'
    log keeps every event and looks each append up in it, which grows with the run)."""

    def __init__(self) -> None:
        self.appended: list[Event] = []

    async def append(self, events: Sequence[Event]) -> None:
        self.appended += events

    async def append_new_goal(self, events: Sequence[Event]) -> None:
        self.appended += events

    async def record(self, goal_id: str) -> Sequence[Event]:
        raise AssertionError(f"the cache is authoritative: nothing is read ({goal_id})")

    async def fork_origin(self, goal_id: str, at_seq: int) -> Sequence[Event]:
        raise AssertionError(f"no forks here ({goal_id}@{at_seq})")

    def take(self) -> list[Event]:
        taken, self.appended = self.appended, []
        return taken


def _answers(decided: list[Event], now: datetime) -> list[Event]:
    """What the executor and the evaluator would answer to ``decided``."""
    answers: list[Event] = []
    for event in decided:
        stamp = Stamp.caused_by(event, producer="other@bench", now=now)
        if isinstance(event, TaskScheduled):
            answers.append(
                TaskCompleted(
                    **stamp.envelope("task_completed", event.iteration, event.task_id),
                    iteration=event.iteration,
                    task_id=event.task_id,
                    tool=event.tool,
                    output=str(event.args.get("text", "")),
                    attempts=1,
                    duration_ms=0.1,
                )
            )
        elif isinstance(event, EvaluationRequested):
            answers.append(
                EvaluationCompleted(
                    **stamp.envelope("evaluation_completed", event.iteration),
                    request_id=event.event_id,
                    iteration=event.iteration,
                    verdict="accept",
                    score=1.0,
                    feedback="all checks passed",
                )
            )
    return answers


async def _run(bodies: list[bytes]) -> int:
    now = datetime.now(UTC)
    log = _Log()
    # The unit tests' wiring of the two handlers, over this log's ports (the same methods).
    intake, planner = handler_pair(log)  # type: ignore[arg-type]
    handled = 0
    for n, body in enumerate(bodies):
        await intake.admit(body, fallback_command_id=f"c-{n}")
        pending = log.take()
        while pending:
            event = pending.pop(0)
            await planner.handle(event, first_delivery=True)
            handled += 1
            pending += _answers(log.take(), now)
    return handled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=4000)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    args = parser.parse_args()
    bodies = [msgspec.json.encode(standard_goal(n, prefix="h")) for n in range(args.goals)]
    asyncio.run(_run(bodies[:200]))  # warm-up
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    started = time.process_time()
    handled = asyncio.run(_run(bodies))
    spent = time.process_time() - started
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    per_goal_us = spent / args.goals * 1e6
    deliveries = handled / args.goals
    print(
        f"{args.goals} goals, {deliveries:.1f} deliveries each: {per_goal_us:.0f} µs CPU per goal"
    )


if __name__ == "__main__":
    main()
