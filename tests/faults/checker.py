"""The fault suite's checker: compares the event log and the projections with what was submitted.

After a run it verifies, from the stream itself:

- every submitted goal finished: ``goal_completed``, or ``goal_failed`` with a reason;
- no event id is stored twice, and every stored message decodes as an event;
- no goal's history has a gap: it starts with ``goal_accepted``; every event's cause is an
  earlier event of the same goal; every scheduled task has exactly one outcome; every tool
  call (task attempt) has exactly one result; attempts are numbered 1, 2, ... without holes
  (a call of an instant tool without side effects is recorded by its outcome alone: such a
  tool may run again after a crash, but its task still has one outcome);
- no conflicting decisions: one plan per iteration, one terminal event per goal;
- side effects: a tool that appends a line per call ran at most once per recorded attempt;
- the projector's DuckDB file equals a fresh rebuild from the stream, view by view.

``Verdict.line()`` is what ``make faults`` prints for each scenario.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client as NatsClient

from events.calls import implied_call
from events.catalog import (
    GoalAccepted,
    GoalCompleted,
    GoalFailed,
    PlanCreated,
    PlanRevised,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    ToolCalled,
    ToolFailed,
    ToolReturned,
)
from events.model import Event
from events.subjects import EVENTS_STREAM, is_reserved_goal_id
from projections.replay import replay_into
from projections.schema import CHECKSUM_VIEWS
from projections.store import ProjectionStore
from tests.support import all_events

__all__ = [
    "Verdict",
    "check_log",
    "check_projection",
    "check_side_effects",
    "collect",
    "count_lines",
]


@dataclass
class Verdict:
    scenario: str
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    events: int = 0
    stream_messages: int = 0
    unfinished: list[str] = field(default_factory=list)
    duplicate_ids: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            not self.unfinished
            and not self.duplicate_ids
            and not self.problems
            and self.events == self.stream_messages
        )

    def line(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.counts.items())
        verdict = "PASS" if self.ok else "FAIL"
        return (
            f"[{verdict}] {self.scenario}: submitted={self.submitted} "
            f"completed={self.completed} failed={self.failed} lost={len(self.unfinished)} "
            f"duplicated={sum(n - 1 for n in self.duplicate_ids.values())} "
            f"events={self.events} stream_messages={self.stream_messages} "
            f"problems={len(self.problems)}{extra}"
        )

    def explain(self) -> str:
        shown = [*self.problems[:20], *(f"unfinished goal {g}" for g in self.unfinished[:20])]
        shown += [
            f"event id {i} stored {n} times" for i, n in list(self.duplicate_ids.items())[:20]
        ]
        return self.line() + "".join(f"\n  - {p}" for p in shown)


def _key(event: Event) -> tuple[int, str]:
    return (int(getattr(event, "iteration", 0)), str(getattr(event, "task_id", "")))


def _goal_gaps(goal_id: str, history: list[Event]) -> list[str]:
    """What is missing or doubled in one goal's history (in stream order)."""
    problems: list[str] = []
    if not history or not isinstance(history[0], GoalAccepted):
        first = type(history[0]).__name__ if history else "nothing"
        problems.append(f"{goal_id}: history starts with {first}, not goal_accepted")
    problems += _missing_causes(goal_id, history)
    problems += _task_outcomes(goal_id, history)
    problems += _tool_results(goal_id, history)
    plans = Counter(
        e.iteration if isinstance(e, PlanRevised) else 1
        for e in history
        if isinstance(e, PlanCreated | PlanRevised)
    )
    problems += [f"{goal_id}: {n} plans for iteration {it}" for it, n in plans.items() if n > 1]
    terminal = [e for e in history if isinstance(e, GoalCompleted | GoalFailed)]
    if len(terminal) > 1:
        problems.append(f"{goal_id}: {len(terminal)} terminal events")
    return problems


def _missing_causes(goal_id: str, history: list[Event]) -> list[str]:
    problems = []
    seen: set[str] = set()
    for event in history:
        cause = event.causation_id
        if not isinstance(event, GoalAccepted) and cause is not None and cause not in seen:
            problems.append(
                f"{goal_id}: {type(event).__name__} {event.event_id} is caused by {cause}, "
                "which is not an earlier event of the goal"
            )
        seen.add(event.event_id)
    return problems


def _task_outcomes(goal_id: str, history: list[Event]) -> list[str]:
    problems = []
    scheduled = Counter(_key(e) for e in history if isinstance(e, TaskScheduled))
    outcomes = Counter(_key(e) for e in history if isinstance(e, TaskCompleted | TaskFailed))
    for task, n in scheduled.items():
        if n != 1 or outcomes[task] != 1:
            problems.append(f"{goal_id}: task {task} scheduled {n}x with {outcomes[task]} outcomes")
    for task in outcomes.keys() - scheduled.keys():
        problems.append(f"{goal_id}: task {task} has an outcome but was never scheduled")
    return problems


def _is_a_calls_return(event: Event) -> bool:
    """A plain task's task_completed is its successful call's return too (an older log's
    carries no attempt_duration_ms: its call returned with a tool_returned of its own)."""
    return isinstance(event, TaskCompleted) and event.attempt_duration_ms is not None


def _calls(history: list[Event]) -> list[ToolCalled]:
    """Every tool call of the history: recorded before it ran (``tool_called``), or recorded by
    its outcome alone (an instant tool without side effects: ``called_at`` set)."""
    scheduled = {(e.goal_id, *_key(e)): e for e in history if isinstance(e, TaskScheduled)}
    calls: list[ToolCalled] = []
    for event in history:
        task = scheduled.get((event.goal_id, *_key(event)))
        if isinstance(event, ToolCalled):
            calls.append(event)
        elif isinstance(event, TaskCompleted | ToolFailed) and task is not None:
            implied = implied_call(event, task)
            calls += [implied] if implied is not None else []
    return calls


def _tool_results(goal_id: str, history: list[Event]) -> list[str]:
    problems = []
    calls: dict[tuple[int, str], list[int]] = defaultdict(list)
    results: Counter[tuple[int, str, int]] = Counter()
    for call in _calls(history):
        calls[_key(call)].append(call.attempt)
    for event in history:
        if isinstance(event, ToolReturned | ToolFailed):
            results[(*_key(event), event.attempt)] += 1
        elif _is_a_calls_return(event):
            assert isinstance(event, TaskCompleted)
            results[(*_key(event), event.attempts)] += 1
    for task, attempts in calls.items():
        if attempts != list(range(1, len(attempts) + 1)):
            problems.append(f"{goal_id}: task {task} tool calls numbered {attempts}")
        problems += [
            f"{goal_id}: task {task} attempt {attempt} has {results[(*task, attempt)]} results "
            "(want exactly 1)"
            for attempt in attempts
            if results[(*task, attempt)] != 1
        ]
    return problems


def check_log(
    scenario: str,
    submitted: Iterable[str],
    log: list[Event],
    stream_messages: int,
    dead_lettered: Iterable[str] = (),
) -> Verdict:
    """Everything the checker can tell from the event log alone.

    ``dead_lettered``: goals stopped on purpose by a poison event; they must not finish.
    """
    goal_ids = list(submitted)
    verdict = Verdict(scenario, submitted=len(goal_ids), events=len(log))
    verdict.stream_messages = stream_messages
    counts = Counter(e.event_id for e in log)
    verdict.duplicate_ids = {i: n for i, n in counts.items() if n > 1}
    by_goal: dict[str, list[Event]] = defaultdict(list)
    for event in log:
        by_goal[event.goal_id].append(event)
    for goal_id in goal_ids:
        history = by_goal.get(goal_id, [])
        outcome = next((e for e in history if isinstance(e, GoalCompleted | GoalFailed)), None)
        if outcome is None:
            verdict.unfinished.append(goal_id)
            continue
        if isinstance(outcome, GoalCompleted):
            verdict.completed += 1
        else:
            verdict.failed += 1
            if not outcome.reason.strip():
                verdict.problems.append(f"{goal_id}: goal_failed without a reason")
        verdict.problems += _goal_gaps(goal_id, history)
    stopped = set(dead_lettered)
    for goal_id in stopped:
        if any(isinstance(e, GoalCompleted | GoalFailed) for e in by_goal.get(goal_id, [])):
            verdict.problems.append(f"{goal_id}: finished although its event was dead-lettered")
    # The platform's own (the planner's leases) are no goal.
    unknown = {g for g in by_goal.keys() - set(goal_ids) - stopped if not is_reserved_goal_id(g)}
    if unknown:
        verdict.problems.append(f"events of goals nobody submitted: {sorted(unknown)[:5]}")
    return verdict


async def collect(
    scenario: str, nc: NatsClient, submitted: Iterable[str], dead_lettered: Iterable[str] = ()
) -> Verdict:
    """Read the whole log and check it."""
    log = await all_events(nc)
    info = await nc.jetstream().stream_info(EVENTS_STREAM)
    return check_log(scenario, submitted, log, int(info.state.messages), dead_lettered)


def check_side_effects(
    verdict: Verdict, log: list[Event], lines_per_task: Mapping[tuple[str, str], int]
) -> None:
    """``lines_per_task[(goal_id, task_id)]``: how often the counting tool really ran.

    At most once per recorded attempt, and at least once if a result was returned.
    """
    called = Counter((call.goal_id, call.task_id) for call in _calls(log))
    returned: set[tuple[str, str]] = set()
    for event in log:
        if isinstance(event, ToolReturned) or _is_a_calls_return(event):
            assert isinstance(event, ToolReturned | TaskCompleted)
            returned.add((event.goal_id, event.task_id))
    verdict.counts["side_effects"] = sum(lines_per_task.values())
    verdict.counts["side_effect_attempts"] = sum(called[task] for task in lines_per_task)
    for task, lines in lines_per_task.items():
        if lines > called[task]:
            verdict.problems.append(f"{task}: the tool ran {lines}x for {called[task]} attempts")
        if task in returned and lines < 1:
            verdict.problems.append(f"{task}: a result is recorded but the tool never ran")


def count_lines(directory: Path) -> dict[tuple[str, str], int]:
    """Lines per file ``<goal_id>.<task_id>.txt`` written by the append_line tool."""
    counts: dict[tuple[str, str], int] = {}
    for path in directory.glob("*.txt"):
        goal_id, task_id = path.stem.rsplit(".", 1)
        counts[(goal_id, task_id)] = len(path.read_text().splitlines())
    return counts


async def check_projection(
    verdict: Verdict, nc: NatsClient, live_db: Path, rebuilt_db: Path
) -> None:
    """The projector's file (closed: the projector stopped) against a fresh rebuild."""
    with ProjectionStore.open(rebuilt_db, locked=False) as store:
        await replay_into(store, nc)
        fresh = store.checksums()
    with ProjectionStore.open(live_db) as store:
        live = store.checksums()
    for view in CHECKSUM_VIEWS:
        if live[view] != fresh[view]:
            verdict.problems.append(
                f"projection view {view}: live {live[view]} != rebuilt {fresh[view]}"
            )
    verdict.counts["views_checked"] = len(CHECKSUM_VIEWS)
