"""Projection store: given raw event batches -> when applied to DuckDB -> then the views."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from events.catalog import (
    GoalAccepted,
    GoalCompleted,
    GoalFailed,
    GoalRejected,
    LlmResponded,
    MemoryStored,
    TaskCompleted,
    TaskScheduled,
    TaskStarted,
    ToolCalled,
    ToolFailed,
    ToolReturned,
)
from events.codec import encode
from events.model import Event
from projections import derive
from projections.store import ProjectionStore, ProjectionWriteError

DAY_ONE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Log:
    """A hand-made event stream: each event gets the next stream sequence."""

    events: list[tuple[Event, int]] = field(default_factory=list)

    def add(self, event: Event) -> Event:
        self.events.append((event, len(self.events) + 1))
        return event


def envelope(goal_id: str, event_id: str, at: datetime, producer: str) -> dict[str, Any]:
    return {
        "event_id": f"{goal_id}/{event_id}",
        "goal_id": goal_id,
        "occurred_at": at,
        "causation_id": None,
        "correlation_id": goal_id,
        "producer": producer,
    }


def accept(log: Log, goal_id: str, at: datetime) -> None:
    log.add(
        GoalAccepted(
            **envelope(goal_id, "accepted", at, "planner@0.1.0"),
            command_id=f"c-{goal_id}",
            text=f"work on {goal_id}",
        )
    )


def run_task(
    log: Log,
    goal_id: str,
    task_id: str,
    at: datetime,
    *,
    tool: str = "echo",
    durations_ms: tuple[float, ...] = (10.0,),
    iteration: int = 1,
) -> None:
    """Schedule a task and run it; every duration but the last is a transient tool failure."""
    key: dict[str, Any] = {"iteration": iteration, "task_id": task_id, "tool": tool}
    prefix = f"{iteration}/{task_id}"
    log.add(
        TaskScheduled(
            **envelope(goal_id, f"{prefix}/scheduled", at, "planner@0.1.0"),
            **key,
            description=f"do {task_id}",
            args={"text": task_id},
            timeout_s=5.0,
            max_attempts=3,
        )
    )
    for attempt, duration in enumerate(durations_ms, start=1):
        tick = at + timedelta(seconds=attempt)
        executor = envelope(goal_id, f"{prefix}/{attempt}", tick, "executor@0.1.0")
        log.add(
            TaskStarted(
                **{**executor, "event_id": executor["event_id"] + "/s"}, **key, attempt=attempt
            )
        )
        log.add(
            ToolCalled(
                **{**executor, "event_id": executor["event_id"] + "/c"},
                **key,
                attempt=attempt,
                args={"text": task_id},
            )
        )
        if attempt < len(durations_ms):
            log.add(
                ToolFailed(
                    **{**executor, "event_id": executor["event_id"] + "/f"},
                    **key,
                    attempt=attempt,
                    error="flaky",
                    transient=True,
                    duration_ms=duration,
                )
            )
        else:
            log.add(
                ToolReturned(
                    **{**executor, "event_id": executor["event_id"] + "/r"},
                    **key,
                    attempt=attempt,
                    output=f"{task_id} done",
                    duration_ms=duration,
                )
            )
    log.add(
        TaskCompleted(
            **envelope(goal_id, f"{prefix}/completed", at + timedelta(seconds=9), "executor@0.1.0"),
            **key,
            output=f"{task_id} done",
            attempts=len(durations_ms),
            duration_ms=sum(durations_ms),
        )
    )
    log.add(
        MemoryStored(
            **envelope(goal_id, f"{prefix}/memory", at + timedelta(seconds=9), "memory@0.1.0"),
            key=f"{goal_id}/{prefix}",
            text=f"{task_id} done",
            source_event_id=f"{goal_id}/{prefix}/completed",
        )
    )


def complete(log: Log, goal_id: str, at: datetime, iterations: int = 1) -> None:
    log.add(
        GoalCompleted(
            **envelope(goal_id, "completed", at, "planner@0.1.0"),
            result="done",
            iterations=iterations,
            score=1.0,
        )
    )


def two_goals_interleaved() -> Log:
    log = Log()
    accept(log, "g-a", DAY_ONE)
    accept(log, "g-b", DAY_ONE)
    run_task(log, "g-a", "s1", DAY_ONE, durations_ms=(5.0, 15.0))
    run_task(log, "g-b", "s1", DAY_ONE, tool="calculator")
    run_task(log, "g-a", "s2", DAY_ONE)
    complete(log, "g-a", DAY_ONE + timedelta(seconds=30))
    return log


Batch = tuple[list[int], list[bytes]]


def batched(log: Log, size: int) -> Iterator[Batch]:
    """The log as the projector hands it over: stream sequences and raw payload bytes."""
    for start in range(0, len(log.events), size):
        chunk = log.events[start : start + size]
        yield [seq for _, seq in chunk], [encode(event) for event, _ in chunk]


def write(store: ProjectionStore, log: Log, size: int = 1_000) -> None:
    for seqs, payloads in batched(log, size):
        store.apply_raw(seqs, payloads)


def rows(store: ProjectionStore, sql: str) -> list[tuple[Any, ...]]:
    return store.connection.execute(sql).fetchall()


def counts(store: ProjectionStore) -> dict[str, int]:
    return {
        table: rows(store, f"SELECT count(*) FROM {table}")[0][0]
        for table in ("goals", "tasks", "facts", "events", "trajectory")
    }


@pytest.fixture
def store() -> Iterator[ProjectionStore]:
    with ProjectionStore.open(":memory:") as opened:
        yield opened


def test_an_empty_store_is_at_sequence_zero(store: ProjectionStore) -> None:
    assert store.last_seq() == 0
    assert counts(store) == dict.fromkeys(("goals", "tasks", "facts", "events", "trajectory"), 0)


def test_a_batch_lands_in_every_view_with_its_checkpoint(store: ProjectionStore) -> None:
    log = two_goals_interleaved()

    write(store, log)

    assert store.last_seq() == len(log.events)
    assert rows(store, "SELECT goal_id, status, text, iterations FROM goals ORDER BY 1") == [
        ("g-a", "completed", "work on g-a", 1),
        ("g-b", "running", "work on g-b", None),
    ]
    assert rows(
        store,
        "SELECT goal_id, task_id, status, attempts, description, output, duration_ms "
        "FROM tasks ORDER BY 1, 2",
    ) == [
        ("g-a", "s1", "completed", 2, "do s1", "s1 done", 20.0),
        ("g-a", "s2", "completed", 1, "do s2", "s2 done", 10.0),
        ("g-b", "s1", "completed", 1, "do s1", "s1 done", 10.0),
    ]
    assert rows(store, "SELECT key, value FROM facts ORDER BY 1") == [
        ("g-a/1/s1", "s1 done"),
        ("g-a/1/s2", "s2 done"),
        ("g-b/1/s1", "s1 done"),
    ]
    assert counts(store)["events"] == counts(store)["trajectory"] == len(log.events)
    [(payload_type,)] = rows(store, "SELECT payload->>'type' FROM events WHERE stream_seq = 1")
    assert payload_type == "goal_accepted"


def test_reapplying_the_same_batch_doubles_nothing(store: ProjectionStore) -> None:
    [batch] = batched(two_goals_interleaved(), 1_000)
    assert store.apply_raw(*batch) == len(batch[0])
    before = (counts(store), store.checksums())

    assert store.apply_raw(*batch) == 0

    assert (counts(store), store.checksums()) == before


def test_a_batch_overlapping_the_checkpoint_applies_only_the_new_events(
    store: ProjectionStore,
) -> None:
    log = two_goals_interleaved()
    [(seqs, payloads)] = batched(log, 1_000)
    store.apply_raw(seqs[:10], payloads[:10])

    assert store.apply_raw(seqs, payloads) == len(seqs) - 10

    assert counts(store)["events"] == len(seqs)
    with ProjectionStore.open(":memory:") as at_once:
        at_once.apply_raw(seqs, payloads)
        assert at_once.checksums() == store.checksums()


def test_an_older_batch_replayed_after_a_newer_one_changes_nothing(store: ProjectionStore) -> None:
    log = Log()
    accept(log, "g-1", DAY_ONE)
    complete(log, "g-1", DAY_ONE + timedelta(seconds=5))
    older, newer = batched(log, 1)
    store.apply_raw(*older)
    store.apply_raw(*newer)

    store.apply_raw(*older)

    assert rows(store, "SELECT status, last_seq FROM goals") == [("completed", 2)]
    assert store.last_seq() == 2  # the checkpoint never moves backwards


def test_a_failing_batch_leaves_neither_rows_nor_checkpoint(
    store: ProjectionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = two_goals_interleaved()
    first, second = list(batched(log, 10))[:2]
    store.apply_raw(*first)
    before = (counts(store), store.checksums(), store.last_seq())
    # Every table but the last one is written before the failure.
    monkeypatch.setitem(derive.DERIVATIONS, "facts", "SELECT error('disk on fire')")

    with pytest.raises(ProjectionWriteError, match=r"nothing of it was kept: .*disk on fire"):
        store.apply_raw(*second)

    assert (counts(store), store.checksums(), store.last_seq()) == before
    monkeypatch.undo()
    write(store, log)  # the store is still usable
    assert store.last_seq() == len(log.events)


def test_upserts_across_batches_follow_the_merge_rules(store: ProjectionStore) -> None:
    log = Log()
    accept(log, "g-1", DAY_ONE)
    run_task(log, "g-1", "s1", DAY_ONE, durations_ms=(1.0, 2.0, 3.0))

    write(store, log, size=1)  # every event alone: each column merges in SQL, not in Python

    [(status, attempts, started_at, description, finished_at)] = rows(
        store, "SELECT status, attempts, started_at, description, finished_at FROM tasks"
    )
    assert (status, attempts, description) == ("completed", 3, "do s1")
    assert started_at == datetime(2024, 5, 1, 12, 0, 1)  # the first attempt's start, in UTC
    assert finished_at == datetime(2024, 5, 1, 12, 0, 9)


def test_trajectory_steps_number_each_goal_in_stream_order(store: ProjectionStore) -> None:
    log = two_goals_interleaved()
    for seqs, payloads in batched(log, 4):
        store.apply_raw(list(reversed(seqs)), list(reversed(payloads)))  # order within a batch

    steps = rows(store, "SELECT goal_id, step, stream_seq FROM trajectory ORDER BY goal_id, step")

    for goal_id in ("g-a", "g-b"):
        mine = [(step, seq) for gid, step, seq in steps if gid == goal_id]
        expected_seqs = [seq for event, seq in log.events if event.goal_id == goal_id]
        assert mine == list(enumerate(expected_seqs, start=1))
    [(first_type, actor)] = rows(
        store, "SELECT type, actor FROM trajectory WHERE goal_id = 'g-b' AND step = 1"
    )
    assert (first_type, actor) == ("goal_accepted", "planner")


def test_tool_stats_counts_calls_failures_and_latency_percentiles(store: ProjectionStore) -> None:
    log = Log()
    accept(log, "g-1", DAY_ONE)
    run_task(log, "g-1", "s1", DAY_ONE, tool="echo", durations_ms=(10.0,))
    run_task(log, "g-1", "s2", DAY_ONE, tool="echo", durations_ms=(20.0,))
    run_task(log, "g-1", "s3", DAY_ONE, tool="echo", durations_ms=(30.0,))
    run_task(log, "g-1", "s4", DAY_ONE, tool="http_get", durations_ms=(100.0, 300.0))
    write(store, log)

    stats = rows(store, "SELECT tool, calls, failures, p50_ms, p95_ms FROM tool_stats ORDER BY 1")

    assert stats == [
        ("echo", 3, 0, 20.0, pytest.approx(29.0)),
        ("http_get", 2, 1, 200.0, pytest.approx(290.0)),
    ]


def test_goal_stats_summarise_goals_per_day_and_status(store: ProjectionStore) -> None:
    day_two = DAY_ONE + timedelta(days=1)
    log = Log()
    accept(log, "quick", DAY_ONE)
    complete(log, "quick", DAY_ONE + timedelta(seconds=10), iterations=1)
    accept(log, "slow", DAY_ONE)
    complete(log, "slow", DAY_ONE + timedelta(seconds=30), iterations=3)
    accept(log, "doomed", DAY_ONE)
    log.add(
        GoalFailed(
            **envelope("doomed", "failed", DAY_ONE + timedelta(seconds=4), "planner@0.1.0"),
            reason="no luck",
            iterations=3,
        )
    )
    log.add(
        GoalRejected(
            **envelope("bad", "rejected", DAY_ONE, "planner@0.1.0"),
            command_id="c-bad",
            reason="empty text",
        )
    )
    accept(log, "pending", day_two)
    write(store, log)

    stats = rows(
        store,
        "SELECT CAST(day AS VARCHAR), status, goals, avg_iterations, "
        "p50_duration_ms, p95_duration_ms FROM goal_stats ORDER BY 1, 2",
    )

    assert stats == [
        ("2024-05-01", "completed", 2, 2.0, 20_000.0, pytest.approx(29_000.0)),
        ("2024-05-01", "failed", 1, 3.0, 4_000.0, 4_000.0),
        ("2024-05-01", "rejected", 1, None, 0.0, 0.0),
        ("2024-05-02", "running", 1, None, None, None),
    ]


def _answered(log: Log, goal_id: str, n: int, tokens: tuple[int, int], cost: float) -> None:
    log.add(
        LlmResponded(
            **envelope(goal_id, f"llm-{n}", DAY_ONE, "planner@0.1.0"),
            provider="openai",
            model="m",
            request_hash=f"h{n}",
            content="{}",
            tokens_in=tokens[0],
            tokens_out=tokens[1],
            cost_usd=cost,
        )
    )


def test_goal_stats_add_up_the_model_tokens_and_cost_of_their_goals(
    store: ProjectionStore,
) -> None:
    log = Log()
    for goal_id in ("a", "b", "c"):
        accept(log, goal_id, DAY_ONE)
    _answered(log, "a", 1, (50, 20), 0.002)
    _answered(log, "a", 2, (10, 5), 0.001)
    _answered(log, "b", 3, (7, 3), 0.0005)
    complete(log, "a", DAY_ONE + timedelta(seconds=1))
    complete(log, "b", DAY_ONE + timedelta(seconds=1))
    _answered(log, "_planner", 4, (1000, 1000), 1.0)  # not a goal: counted nowhere
    write(store, log)

    stats = rows(store, "SELECT status, goals, tokens_in, tokens_out, cost_usd FROM goal_stats")

    assert sorted(stats) == [
        ("completed", 2, 67, 28, pytest.approx(0.0035)),
        ("running", 1, 0, 0, 0.0),  # c asked no model
    ]


def test_checksums_agree_however_the_events_were_batched() -> None:
    log = two_goals_interleaved()
    checksums = []
    for size in (1, 7, 1_000):
        with ProjectionStore.open(":memory:") as store:
            write(store, log, size)
            checksums.append(store.checksums())

    assert checksums[0] == checksums[1] == checksums[2]
    assert set(checksums[0]) == {
        "goals",
        "tasks",
        "facts",
        "trajectory",
        "events",
        "approvals",
        "messages",
    }


def test_checksums_differ_when_an_event_is_missing() -> None:
    log = two_goals_interleaved()
    with ProjectionStore.open(":memory:") as full, ProjectionStore.open(":memory:") as partial:
        write(full, log)
        write(partial, Log(events=log.events[:-1]))  # without the final goal_completed

        differing = {
            view for view, digest in full.checksums().items() if partial.checksums()[view] != digest
        }

    assert differing == {"goals", "trajectory", "events"}


def test_a_file_store_keeps_rows_and_checkpoint_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "projections.duckdb"
    log = two_goals_interleaved()
    with ProjectionStore.open(path) as store:
        write(store, log)
        expected = store.checksums()

    with ProjectionStore.open(path) as reopened:
        assert reopened.last_seq() == len(log.events)
        assert reopened.checksums() == expected


def test_checkpoint_moves_the_log_into_the_file_and_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "projections.duckdb"
    wal = tmp_path / "projections.duckdb.wal"
    log = two_goals_interleaved()
    with ProjectionStore.open(path) as store:
        write(store, log, size=5)
        expected = store.checksums()
        assert wal.exists()
        assert wal.stat().st_size > 0  # the committed batches are in the log until then

        store.checkpoint()

        assert not wal.exists() or wal.stat().st_size == 0
        assert store.checksums() == expected
    with ProjectionStore.open(path) as reopened:
        assert reopened.last_seq() == len(log.events)
        assert reopened.checksums() == expected


def test_reset_empties_everything(store: ProjectionStore) -> None:
    write(store, two_goals_interleaved())

    store.reset()

    assert store.last_seq() == 0
    assert set(counts(store).values()) == {0}


def test_a_store_from_another_schema_version_is_rebuilt_empty(tmp_path: Path) -> None:
    path = tmp_path / "projections.duckdb"
    with ProjectionStore.open(path) as store:
        write(store, two_goals_interleaved())
        store.connection.execute("UPDATE projection_checkpoint SET schema_version = 0")

    with ProjectionStore.open(path) as reopened:
        assert reopened.last_seq() == 0
        assert set(counts(reopened).values()) == {0}


def test_the_database_refuses_files_and_settings(store: ProjectionStore) -> None:
    with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
        store.connection.execute("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
        store.connection.execute("SET enable_external_access = true")


def test_a_react_tasks_tool_stays_react_while_it_calls_other_tools(
    store: ProjectionStore,
) -> None:
    log = Log()
    accept(log, "g-1", DAY_ONE)
    key: dict[str, Any] = {"iteration": 1, "task_id": "r1"}
    executor = envelope("g-1", "r1", DAY_ONE, "executor@0.1.0")
    log.add(
        TaskScheduled(
            **envelope("g-1", "r1/scheduled", DAY_ONE, "planner@0.1.0"),
            **key,
            tool="react",
            description="open-ended",
            args={"instruction": "compute"},
            timeout_s=5.0,
            max_attempts=1,
            allowed_tools=("calculator",),
        )
    )
    log.add(TaskStarted(**{**executor, "event_id": "s"}, **key, tool="react", attempt=1))
    log.add(
        ToolCalled(
            **{**executor, "event_id": "c"},
            **key,
            tool="calculator",
            attempt=1,
            args={"expression": "1+1"},
            step=1,
            call=1,
        )
    )
    log.add(
        ToolReturned(
            **{**executor, "event_id": "r"},
            **key,
            tool="calculator",
            attempt=1,
            output="2",
            duration_ms=3.0,
            step=1,
            call=1,
        )
    )
    write(store, log)

    assert rows(store, "SELECT tool, status FROM tasks") == [("react", "running")]
    assert rows(store, "SELECT tool, calls FROM tool_stats") == [("calculator", 1)]
