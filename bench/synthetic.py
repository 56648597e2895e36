"""A realistic event log without running the platform: the events one standard goal produces.

Each goal is the sequence the planner, executor, memory and evaluator really emit for a
two-step goal (19 events). Goals are interleaved as concurrent goals would be, each goal's own
events staying in causal order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from events.catalog import (
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCompleted,
    MemoryStored,
    PlanCreated,
    TaskCompleted,
    TaskScheduled,
    TaskStarted,
    ToolCalled,
    ToolReturned,
)
from events.codec import encode
from events.model import Event, Stamp, TaskOutcome, TaskSpec

__all__ = ["EVENTS_PER_GOAL", "goal_events", "interleaved_payloads"]

EVENTS_PER_GOAL = 19
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def goal_events(n: int, rnd: random.Random) -> list[Event]:
    goal_id = f"bench-{n:08d}"
    clock = [T0 + timedelta(milliseconds=n)]

    def stamp(producer: str) -> Stamp:
        clock[0] += timedelta(microseconds=rnd.randint(200, 3000))
        return Stamp(producer, goal_id, clock[0], None, goal_id)

    planner, executor, memory = "planner@0.1.0", "executor@0.1.0", "memory@0.1.0"
    text = f"compute {n}*23 then summarize it for team {n % 7}"
    tasks = (
        TaskSpec(
            task_id="s1",
            description=f"calculator {n}*23",
            tool="calculator",
            args={"expression": f"{n}*23"},
        ),
        TaskSpec(
            task_id="s2",
            description="summarize",
            tool="echo",
            args={"text": "Summary: {{steps.s1.output}}"},
            depends_on=("s1",),
        ),
    )
    s = stamp(planner)
    out: list[Event] = [
        GoalAccepted(
            **s.envelope("goal_accepted", "accepted"),
            command_id=f"c-{n}",
            text=text,
            metadata={"team": f"t{n % 7}"},
        ),
        ContextRequested(**s.envelope("context_requested", "context", 1), iteration=1, query=text),
        ContextProvided(
            **stamp(memory).envelope("context_provided", "c"), request_id="r", iteration=1
        ),
        PlanCreated(
            **stamp(planner).envelope("plan_created", "plan", 1),
            iteration=1,
            strategy="decomposed",
            tasks=tasks,
        ),
    ]
    output = str(n * 23)
    for spec in tasks:
        if spec.task_id == "s2":
            output = f"Summary: {n * 23}"
        duration = rnd.uniform(0.05, 5.0)
        args = {"text": output} if spec.tool == "echo" else spec.args
        out += [
            TaskScheduled(
                **stamp(planner).envelope("task_scheduled", "task", 1, spec.task_id),
                iteration=1,
                task_id=spec.task_id,
                description=spec.description,
                tool=spec.tool,
                args=args,
                timeout_s=30.0,
                max_attempts=3,
            ),
            TaskStarted(
                **stamp(executor).envelope("task_started", 1, spec.task_id, 1),
                iteration=1,
                task_id=spec.task_id,
                tool=spec.tool,
                attempt=1,
            ),
            ToolCalled(
                **stamp(executor).envelope("tool_called", 1, spec.task_id, 1),
                iteration=1,
                task_id=spec.task_id,
                tool=spec.tool,
                attempt=1,
                args=args,
            ),
            ToolReturned(
                **stamp(executor).envelope("tool_returned", 1, spec.task_id, 1),
                iteration=1,
                task_id=spec.task_id,
                tool=spec.tool,
                attempt=1,
                output=output,
                duration_ms=duration,
            ),
            TaskCompleted(
                **stamp(executor).envelope("task_completed", 1, spec.task_id),
                iteration=1,
                task_id=spec.task_id,
                tool=spec.tool,
                output=output,
                attempts=1,
                duration_ms=duration,
            ),
        ]
        out.append(
            MemoryStored(
                **stamp(memory).envelope("memory_stored", spec.task_id),
                key=f"{goal_id}/1/{spec.task_id}",
                text=f"{spec.tool} -> {output}",
                source_event_id=out[-1].event_id,
            )
        )
    out += [
        EvaluationRequested(
            **stamp(planner).envelope("evaluation_requested", "evaluation", 1),
            iteration=1,
            text=text,
            expect=None,
            result=output,
            tasks=tuple(
                TaskOutcome(task_id=t.task_id, tool=t.tool, status="completed") for t in tasks
            ),
        ),
        EvaluationCompleted(
            **stamp("evaluator@0.1.0").envelope("evaluation_completed", "e"),
            request_id="r",
            iteration=1,
            verdict="accept",
            score=1.0,
            feedback="all checks passed",
        ),
        GoalCompleted(
            **stamp(planner).envelope("goal_completed", "outcome"),
            result=output,
            iterations=1,
            score=1.0,
        ),
    ]
    assert len(out) == EVENTS_PER_GOAL
    return out


def interleaved_payloads(
    total: int, *, in_flight: int = 100, seed: int = 7
) -> Iterator[tuple[str, str, bytes]]:
    """(subject, event_id, JSON) for ``total`` events of goals ``in_flight`` at a time."""
    rnd = random.Random(seed)
    goals = (total + EVENTS_PER_GOAL - 1) // EVENTS_PER_GOAL
    produced = 0
    for first in range(0, goals, in_flight):
        window = [goal_events(n, rnd) for n in range(first, min(first + in_flight, goals))]
        for position in range(EVENTS_PER_GOAL):
            for events in window:
                event = events[position]
                yield (
                    f"agora.events.{event.goal_id}.{type(event).__struct_config__.tag}",
                    event.event_id,
                    encode(event),
                )
                produced += 1
                if produced >= total:
                    return
