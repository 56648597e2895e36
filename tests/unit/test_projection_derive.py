"""Derivations: given raw events of one type -> when applied in SQL -> then the rows they make."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from events.catalog import (
    CommandRejected,
    EvaluationCompleted,
    GoalAccepted,
    GoalCancelled,
    GoalCompleted,
    GoalDequeued,
    GoalFailed,
    GoalPaused,
    GoalQueued,
    GoalRejected,
    GoalResumed,
    IterationInterrupted,
    LeaseAcquired,
    LlmResponded,
    MemoryStored,
    MessageQueued,
    MessageReceived,
    MessageRejected,
    PlanCreated,
    PlanRevised,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TimerFired,
    TimerStarted,
    ToolCalled,
    ToolFailed,
    ToolReturned,
)
from events.codec import encode
from events.model import Event, TaskSpec
from projections.store import ProjectionStore

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)


def envelope(n: int, at: datetime = NOW, producer: str = "planner@0.1.0") -> dict[str, Any]:
    return {
        "event_id": f"e-{n}",
        "goal_id": "g-1",
        "occurred_at": at,
        "causation_id": None,
        "correlation_id": "g-1",
        "producer": producer,
    }


def task(n: int, at: datetime = NOW) -> dict[str, Any]:
    return {**envelope(n, at, "executor@0.1.0"), "iteration": 1, "task_id": "s1", "tool": "echo"}


@pytest.fixture
def store() -> Iterator[ProjectionStore]:
    with ProjectionStore.open(":memory:") as opened:
        yield opened


def apply(store: ProjectionStore, *items: Event | bytes) -> int:
    first = store.last_seq() + 1
    payloads = [item if isinstance(item, bytes) else encode(item) for item in items]
    return store.apply_raw(range(first, first + len(payloads)), payloads)


def one(store: ProjectionStore, sql: str) -> tuple[Any, ...]:
    [row] = store.connection.execute(sql).fetchall()
    return tuple(row)


GOAL = (
    "SELECT text, status, submitted_at, finished_at, iterations, score, result, reason FROM goals"
)
TASK = (
    "SELECT description, status, attempts, started_at, finished_at, output, error, duration_ms, "
    "args, max_attempts FROM tasks"
)
accepted = GoalAccepted(**envelope(1), command_id="c-1", text="add", metadata={"team": "ops"})


def test_goal_accepted_starts_a_running_goal(store: ProjectionStore) -> None:
    apply(store, accepted)

    assert one(store, GOAL) == (
        "add",
        "running",
        NOW.replace(tzinfo=None),
        None,
        None,
        None,
        None,
        None,
    )
    assert one(store, "SELECT command_id, metadata, max_iterations, last_seq FROM goals") == (
        "c-1",
        '{"team":"ops"}',
        3,
        1,
    )


def test_goal_rejected_is_finished_at_once_and_says_why(store: ProjectionStore) -> None:
    apply(store, GoalRejected(**envelope(1), command_id="c-1", reason="empty text"))

    naive = NOW.replace(tzinfo=None)
    assert one(store, GOAL) == (None, "rejected", naive, naive, None, None, None, "empty text")


def test_plans_and_evaluations_move_iterations_and_score(store: ProjectionStore) -> None:
    spec = TaskSpec(task_id="s1", description="d", tool="echo")
    apply(
        store,
        accepted,
        PlanCreated(**envelope(2), iteration=1, strategy="rules", tasks=(spec,)),
        PlanRevised(**envelope(3), iteration=2, strategy="rules", tasks=(spec,), feedback="no"),
        EvaluationCompleted(
            **envelope(4), request_id="r", iteration=2, verdict="revise", score=0.4, feedback="meh"
        ),
    )
    apply(store, PlanCreated(**envelope(5), iteration=1, strategy="rules", tasks=(spec,)))

    assert one(store, "SELECT status, iterations, score FROM goals") == ("running", 2, 0.4)


@pytest.mark.parametrize("per_event", [False, True])
def test_goal_completed_and_failed_finish_the_goal(store: ProjectionStore, per_event: bool) -> None:
    events: list[Event] = [
        accepted,
        EvaluationCompleted(
            **envelope(2), request_id="r", iteration=1, verdict="revise", score=0.3, feedback="meh"
        ),
        GoalFailed(**envelope(3, LATER), reason="out of iterations", iterations=3),
    ]
    for batch in ([e] for e in events) if per_event else [events]:
        apply(store, *batch)

    # GoalFailed carries no score: the evaluation's stays.
    assert one(store, GOAL) == (
        "add",
        "failed",
        NOW.replace(tzinfo=None),
        LATER.replace(tzinfo=None),
        3,
        0.3,
        None,
        "out of iterations",
    )
    apply(store, GoalCompleted(**envelope(4, LATER), result="391", iterations=2, score=1.0))
    assert one(store, "SELECT status, iterations, score, result FROM goals") == (
        "completed",
        3,
        1.0,
        "391",
    )


@pytest.mark.parametrize("per_event", [False, True])
def test_task_events_fold_into_one_task_row(store: ProjectionStore, per_event: bool) -> None:
    started, done = NOW + timedelta(seconds=1), NOW + timedelta(seconds=9)
    events: list[Event] = [
        TaskScheduled(
            **task(1), description="say hi", args={"text": "hi"}, timeout_s=1.0, max_attempts=3
        ),
        TaskStarted(**task(2, started), attempt=1),
        ToolCalled(**task(3, started), attempt=1, args={"text": "hi"}),
        ToolFailed(**task(4), attempt=1, error="flaky", transient=True, duration_ms=1.0),
        TaskStarted(**task(5, LATER), attempt=2),
        ToolCalled(**task(6, LATER), attempt=2, args={"text": "hi"}),
    ]
    for batch in ([e] for e in events) if per_event else [events]:
        apply(store, *batch)

    assert one(store, TASK) == (
        "say hi",
        "running",
        2,
        started.replace(tzinfo=None),
        None,
        None,
        None,
        None,
        '{"text":"hi"}',
        3,
    )
    apply(
        store,
        ToolReturned(**task(7, done), attempt=2, output="hi", duration_ms=2.0),
        TaskCompleted(**task(8, done), output="hi", attempts=2, duration_ms=3.0),
    )
    assert one(store, TASK) == (
        "say hi",
        "completed",
        2,
        started.replace(tzinfo=None),
        done.replace(tzinfo=None),
        "hi",
        None,
        3.0,
        '{"text":"hi"}',
        3,
    )


def call_of(n: int, task_id: str, tool: str, **fields: Any) -> dict[str, Any]:
    """The fields of an executor event of ``task_id``'s call of ``tool`` (a ReAct task's
    passes ``step`` and ``call``)."""
    return {**task(n, LATER), "task_id": task_id, "tool": tool, "attempt": 1, **fields}


@pytest.mark.parametrize("per_event", [False, True])
def test_a_task_waits_on_its_timer_and_runs_again_or_ends_when_it_fires(
    store: ProjectionStore, per_event: bool
) -> None:
    """A plain task's timer fires with its completion; a ReAct task's call's timer fires with
    the call's result, and the task thinks on: running, not waiting."""
    react_call = {"step": 1, "call": 1}
    timer = {"due_at": LATER, "seconds": 5.0}
    waiting: list[Event] = [
        TaskScheduled(
            **task(1), description="nap", args={"seconds": 5}, timeout_s=60.0, max_attempts=1
        ),
        ToolCalled(**call_of(2, "s1", "echo"), args={"seconds": 5}),
        TimerStarted(**call_of(3, "s1", "echo"), timer_id="e-3", **timer),
        TaskScheduled(
            **{**task(4), "task_id": "r1", "tool": "react"},
            description="rest",
            args={"instruction": "rest"},
            timeout_s=60.0,
            max_attempts=1,
        ),
        ToolCalled(**call_of(5, "r1", "sleep", **react_call), args={"seconds": 5}),
        TimerStarted(**call_of(6, "r1", "sleep", **react_call), timer_id="e-6", **timer),
    ]
    woken: list[Event] = [
        TimerFired(**call_of(7, "s1", "echo"), timer_id="e-3", due_at=LATER, late_ms=0.0),
        TaskCompleted(**task(8, LATER), output="slept 5s", attempts=1, duration_ms=5.0),
        TimerFired(
            **call_of(9, "r1", "sleep", **react_call), timer_id="e-6", due_at=LATER, late_ms=0.0
        ),
        ToolReturned(
            **call_of(10, "r1", "sleep", **react_call), output="slept 5s", duration_ms=5.0
        ),
    ]
    statuses = "SELECT task_id, status FROM tasks ORDER BY task_id"
    for events, expected in (
        (waiting, [("r1", "waiting"), ("s1", "waiting")]),
        (woken, [("r1", "running"), ("s1", "completed")]),
    ):
        for batch in ([e] for e in events) if per_event else [events]:
            apply(store, *batch)
        assert store.connection.execute(statuses).fetchall() == expected


@pytest.mark.parametrize("per_event", [False, True])
def test_a_task_of_todays_shape_starts_at_its_first_call_and_ends_with_its_completion(
    store: ProjectionStore, per_event: bool
) -> None:
    started, done = NOW + timedelta(seconds=1), NOW + timedelta(seconds=9)
    events: list[Event] = [
        TaskScheduled(
            **task(1), description="say hi", args={"text": "hi"}, timeout_s=1.0, max_attempts=3
        ),
        ToolCalled(**task(2, started), attempt=1, args={"text": "hi"}),
        ToolFailed(**task(3), attempt=1, error="flaky", transient=True, duration_ms=1.0),
        ToolCalled(**task(4, LATER), attempt=2, args={"text": "hi"}),
        TaskCompleted(
            **task(5, done), output="hi", attempts=2, duration_ms=3.0, attempt_duration_ms=2.0
        ),
    ]
    for batch in ([e] for e in events) if per_event else [events]:
        apply(store, *batch)

    assert one(store, TASK) == (
        "say hi",
        "completed",
        2,
        started.replace(tzinfo=None),
        done.replace(tzinfo=None),
        "hi",
        None,
        3.0,
        '{"text":"hi"}',
        3,
    )
    # Both calls count in the tool's statistics, the successful one with its own time.
    assert one(store, "SELECT calls, failures, p50_ms FROM tool_stats") == (2, 1, 1.5)
    # The completed task is memory's observation, and the blackboard's fact.
    assert one(store, "SELECT key, value, source_event_id, kind, event_id FROM facts") == (
        "g-1/1/s1",
        "echo -> hi",
        "e-5",
        "observation",
        "e-5",
    )


@pytest.mark.parametrize("per_event", [False, True])
def test_an_older_logs_observation_is_the_fact_as_it_was_then(
    store: ProjectionStore, per_event: bool
) -> None:
    events: list[Event] = [
        ToolReturned(**task(1), attempt=1, output="hi", duration_ms=2.0),
        TaskCompleted(**task(2), output="hi", attempts=1, duration_ms=2.0),
        MemoryStored(
            **envelope(3, LATER, "memory@0.1.0"),
            key="g-1/1/s1",
            text="echo -> hi",
            source_event_id="e-2",
        ),
    ]
    for batch in ([e] for e in events) if per_event else [events]:
        apply(store, *batch)

    assert one(store, "SELECT key, value, source_event_id, recorded_at, event_id FROM facts") == (
        "g-1/1/s1",
        "echo -> hi",
        "e-2",
        LATER.replace(tzinfo=None),
        "e-3",
    )
    # The older task_completed (without attempt_duration_ms) is not a second call.
    assert one(store, "SELECT calls FROM tool_stats") == (1,)


def test_the_platforms_own_events_are_in_events_only(store: ProjectionStore) -> None:
    lease = LeaseAcquired(
        **{**envelope(1), "goal_id": "_planner"}, service="planner", holder="replica-1"
    )
    apply(store, lease, accepted)

    assert one(store, "SELECT count(*) FROM events") == (2,)
    assert one(store, "SELECT goal_id FROM goals") == ("g-1",)
    assert one(store, "SELECT DISTINCT goal_id FROM trajectory") == ("g-1",)


def test_task_failed_records_the_error(store: ProjectionStore) -> None:
    apply(store, TaskFailed(**task(1), error="boom", attempts=3, duration_ms=7.5))

    assert one(store, "SELECT status, attempts, error, duration_ms FROM tasks") == (
        "failed",
        3,
        "boom",
        7.5,
    )


def test_the_first_memory_stored_for_a_key_is_the_fact(store: ProjectionStore) -> None:
    def memory(n: int, text: str) -> MemoryStored:
        return MemoryStored(
            **envelope(n, NOW, "memory@0.1.0"),
            key="k1",
            text=text,
            source_event_id="e-0",
            importance=0.9,
        )

    apply(store, memory(1, "first"), memory(2, "second"))
    apply(store, memory(3, "third"))

    assert one(store, "SELECT * FROM facts") == (
        "g-1",
        "k1",
        "first",
        "e-0",
        NOW.replace(tzinfo=None),
        "observation",
        0.9,
        "e-1",
    )


def test_every_event_lands_in_events_and_the_trajectory(store: ProjectionStore) -> None:
    llm = LlmResponded(
        **envelope(2, NOW, "llm@2"),
        provider="p",
        model="m",
        request_hash="h",
        content="c",
        tokens_in=10,
        tokens_out=3,
        cost_usd=0.01,
        latency_ms=250.0,
    )
    returned = ToolReturned(**task(3), attempt=1, output="o", duration_ms=12.5)

    assert apply(store, accepted, llm, returned) == 3

    trajectory = store.connection.execute(
        "SELECT step, type, actor, duration_ms, tokens_in, tokens_out, cost_usd, tool "
        "FROM trajectory ORDER BY step"
    ).fetchall()
    assert trajectory == [
        (1, "goal_accepted", "planner", None, None, None, None, None),
        (2, "llm_responded", "llm", 250.0, 10, 3, 0.01, None),
        (3, "tool_returned", "executor", 12.5, None, None, None, "echo"),
    ]
    [(payload,)] = store.connection.execute(
        "SELECT payload FROM events WHERE stream_seq = 1"
    ).fetchall()
    assert payload == encode(accepted).decode()


def test_occurred_at_is_stored_in_utc(store: ProjectionStore) -> None:
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    apply(store, GoalAccepted(**envelope(1, plus_two), command_id="c", text="t"))

    assert one(store, "SELECT occurred_at FROM events") == (NOW.replace(tzinfo=None),)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xff\xfe not utf-8", "not valid UTF-8"),
        (b'{"type": "goal_accepted", "goal_id": ', "not valid JSON"),
        (b'["goal_accepted"]', "not a JSON object"),
        (b'{"type": 7, "goal_id": "g-1"}', 'no string "type"'),
        (b'{"type": "goal_accepted"}', 'no string "type" and "goal_id"'),
    ],
)
def test_undecodable_payloads_are_kept_aside(
    store: ProjectionStore, payload: bytes, error: str
) -> None:
    applied = apply(
        store, accepted, payload, GoalCompleted(**envelope(3), result="r", iterations=1, score=1.0)
    )

    assert applied == 2
    assert store.last_seq() == 3
    [(seq, kept, why)] = store.connection.execute("SELECT * FROM undecodable_events").fetchall()
    assert (seq, kept) == (2, payload)
    assert error in why
    assert one(store, "SELECT status FROM goals") == ("completed",)


def test_an_unknown_event_type_still_reaches_events_and_its_goal(store: ProjectionStore) -> None:
    apply(store, accepted, b'{"type": "goal_levitated", "goal_id": "g-1", "event_id": "e-9"}')

    assert one(store, "SELECT type, summary FROM trajectory WHERE stream_seq = 2") == (
        "goal_levitated",
        "goal_levitated",
    )
    assert one(store, "SELECT status, last_seq FROM goals") == ("running", 2)


def test_a_pause_and_a_resume_move_the_goal_between_paused_and_running(
    store: ProjectionStore,
) -> None:
    apply(store, accepted, GoalPaused(**envelope(2), command_id="c-p", reason="hold"))
    assert one(store, "SELECT status, finished_at FROM goals") == ("paused", None)

    # In one batch too: the latest status by stream order wins.
    apply(
        store,
        GoalResumed(**envelope(3), command_id="c-r"),
        GoalPaused(**envelope(4), command_id="c-p2"),
        GoalResumed(**envelope(5), command_id="c-r2"),
    )
    assert one(store, "SELECT status, finished_at FROM goals") == ("running", None)


@pytest.mark.parametrize("one_batch", [False, True])
def test_a_queued_goal_that_is_paused_shows_paused_and_queued_until_its_turn(
    store: ProjectionStore, one_batch: bool
) -> None:
    queued = GoalQueued(**envelope(2), keys=("tenant=a",), ticket=1, reason="tenant=a: 1 of 1")
    steps: list[tuple[Event, str]] = [
        (queued, "queued"),
        (GoalPaused(**envelope(3), command_id="c-p"), "paused"),
        # Resumed before its turn: it still waits for its slot.
        (GoalResumed(**envelope(4), command_id="c-r"), "queued"),
        (GoalPaused(**envelope(5), command_id="c-p2"), "paused"),
        # Its turn comes while it is paused: it holds its slot, and waits paused.
        (GoalDequeued(**envelope(6), keys=("tenant=a",), queued_ms=5.0), "paused"),
        (GoalResumed(**envelope(7), command_id="c-r2"), "running"),
    ]
    apply(store, accepted)
    if one_batch:
        for end in range(1, len(steps) + 1):
            with ProjectionStore.open(":memory:") as fresh:
                apply(fresh, accepted, *(event for event, _ in steps[:end]))
                assert one(fresh, "SELECT status FROM goals") == (steps[end - 1][1],)
        return
    for event, status in steps:
        apply(store, event)
        assert one(store, "SELECT status FROM goals") == (status,), type(event).__name__
    assert one(store, "SELECT paused, queued FROM goals") == (False, False)


def test_a_cancelled_goal_stays_cancelled_when_its_task_stops_or_completes_later(
    store: ProjectionStore,
) -> None:
    apply(
        store,
        accepted,
        PlanCreated(**envelope(2), iteration=1, strategy="explicit", tasks=()),
        TaskScheduled(**task(3), description="d", args={}, timeout_s=1.0, max_attempts=3),
        CommandRejected(
            **envelope(4), command_id="c-0", command="resume", target_goal_id="g-1", reason="no"
        ),
        GoalCancelled(**envelope(5, LATER), command_id="c-1", reason="wrong input", iterations=1),
        TaskCancelled(**task(6, LATER), attempts=1, duration_ms=12.5),
    )
    apply(store, TaskCompleted(**task(7), output="late", attempts=1, duration_ms=1.0))

    assert one(store, "SELECT status, finished_at, iterations, reason FROM goals") == (
        "cancelled",
        LATER.replace(tzinfo=None),
        1,
        "wrong input",
    )
    assert one(store, "SELECT count(*) FROM goals") == (1,)


def test_task_cancelled_ends_the_task_with_its_attempts_and_time(store: ProjectionStore) -> None:
    apply(
        store,
        accepted,
        TaskScheduled(**task(2), description="d", args={}, timeout_s=1.0, max_attempts=3),
        ToolCalled(**task(3), attempt=1, args={}),
        TaskCancelled(
            **task(4, LATER), attempts=1, duration_ms=12.5, reason="the goal was cancelled"
        ),
    )
    assert one(store, "SELECT status, attempts, finished_at, error, duration_ms FROM tasks") == (
        "cancelled",
        1,
        LATER.replace(tzinfo=None),
        "the goal was cancelled",
        12.5,
    )


@pytest.mark.parametrize("per_event", [False, True])
def test_a_message_row_follows_it_from_received_to_applied(
    store: ProjectionStore, per_event: bool
) -> None:
    received = [
        MessageReceived(**envelope(1), command_id="m-1", text="use the EU servers"),
        MessageReceived(**envelope(2), command_id="m-2", text="also echo hi"),
        MessageReceived(**envelope(3), command_id="m-3", text="ignored"),
    ]
    answers = [
        MessageQueued(
            **envelope(4, LATER), command_id="m-1", iteration=1, text="use the EU servers"
        ),
        IterationInterrupted(
            **envelope(5, LATER), command_id="m-2", iteration=1, text="also echo hi"
        ),
        MessageRejected(**envelope(6, LATER), command_id="m-3", target_goal_id="g-1", reason="no"),
        PlanRevised(
            **envelope(7, LATER),
            iteration=2,
            strategy="message",
            tasks=(),
            feedback="f",
            messages=("m-1", "m-2"),
        ),
    ]
    events = [*received, *answers]
    if per_event:
        for event in events:
            apply(store, event)
    else:
        apply(store, *events)
    rows = store.connection.execute(
        "SELECT command_id, text, status, iteration, applied_iteration, received_at, "
        "answered_at, reason FROM messages ORDER BY command_id"
    ).fetchall()
    naive, later = NOW.replace(tzinfo=None), LATER.replace(tzinfo=None)
    assert rows == [
        ("m-1", "use the EU servers", "applied", 1, 2, naive, later, None),
        ("m-2", "also echo hi", "applied", 1, 2, naive, later, None),
        ("m-3", "ignored", "rejected", None, None, naive, later, "no"),
    ]
