"""SQL guard: given user SQL -> when checked and run -> then a bounded read-only query, or why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from events.catalog import GoalAccepted
from events.codec import encode
from events.errors import ConfigurationError
from projections.guard import QueryRefused, check_read_only, run_query
from projections.store import ProjectionStore

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RUNAWAY = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"


def accepted(goal_id: str) -> GoalAccepted:
    return GoalAccepted(
        event_id=f"e-{goal_id}",
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id=None,
        correlation_id=goal_id,
        producer="planner@0.1.0",
        command_id=f"c-{goal_id}",
        text=f"goal {goal_id}",
    )


def add_goals(store: ProjectionStore, *goal_ids: str) -> None:
    first = store.last_seq() + 1
    seqs = list(range(first, first + len(goal_ids)))
    store.apply_raw(seqs, [encode(accepted(goal_id)) for goal_id in goal_ids])


@pytest.fixture
def store() -> Iterator[ProjectionStore]:
    with ProjectionStore.open(":memory:") as opened:
        add_goals(opened, "g-1", "g-2", "g-3")
        yield opened


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("INSERT INTO goals (goal_id, last_seq) VALUES ('x', 1)", "INSERT .*modify data"),
        ("UPDATE goals SET status = 'completed'", "UPDATE .*modify data"),
        ("DELETE FROM events", "DELETE .*modify data"),
        ("CREATE TABLE stolen AS SELECT * FROM events", "CREATE .*change the schema"),
        ("DROP TABLE goals", "DROP .*change the schema"),
        ("ATTACH '/tmp/other.duckdb' AS other", "ATTACH .*attach another database"),
        ("COPY goals TO '/tmp/goals.csv'", "COPY .*read or write files"),
        ("INSTALL httpfs", "INSTALL/LOAD .*extension"),
        ("LOAD httpfs", "INSTALL/LOAD .*extension"),
        ("SET enable_external_access = true", "SET .*change settings"),
        ("PRAGMA enable_profiling", "PRAGMA .*settings"),
        ("EXPLAIN ANALYZE COPY goals TO '/tmp/x.csv'", "EXPLAIN .*would run"),
        ("SELECT 1; DROP TABLE goals", "found 2 statements"),
        ("SELECT 1; SELECT 2", "found 2 statements"),
        ("   ", "no SQL statement"),
        ("SELEKT * FROM goals", "not valid SQL"),
    ],
)
def test_anything_but_a_single_select_is_refused_with_a_reason(sql: str, reason: str) -> None:
    with pytest.raises(QueryRefused, match=f"query refused: .*{reason}"):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM goals",
        "WITH done AS (SELECT * FROM goals WHERE status = 'completed') SELECT count(*) FROM done",
        "FROM trajectory",
        "DESCRIBE goals",
        "SELECT 1;",
    ],
)
def test_read_only_queries_pass_unchanged(sql: str) -> None:
    assert check_read_only(f"  {sql}\n") == sql


def test_a_query_returns_columns_and_rows(store: ProjectionStore) -> None:
    result = run_query(store.connection, "SELECT goal_id, status FROM goals ORDER BY goal_id")

    assert result.columns == ("goal_id", "status")
    assert result.rows == [("g-1", "running"), ("g-2", "running"), ("g-3", "running")]
    assert result.truncated is False
    assert result.elapsed_ms >= 0


def test_rows_beyond_max_rows_are_cut_and_flagged(store: ProjectionStore) -> None:
    result = run_query(store.connection, "SELECT goal_id FROM goals ORDER BY 1", max_rows=2)

    assert result.rows == [("g-1",), ("g-2",)]
    assert result.truncated is True


def test_exactly_max_rows_is_not_truncated(store: ProjectionStore) -> None:
    result = run_query(store.connection, "SELECT goal_id FROM goals", max_rows=3)

    assert (len(result.rows), result.truncated) == (3, False)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_parquet('/tmp/anything.parquet')",
        "SELECT * FROM glob('/etc/*')",
    ],
)
def test_a_select_cannot_reach_the_file_system(store: ProjectionStore, sql: str) -> None:
    with pytest.raises(QueryRefused, match="reaches outside the projections"):
        run_query(store.connection, sql)


def test_a_runaway_query_is_stopped_and_the_store_keeps_working(store: ProjectionStore) -> None:
    with pytest.raises(QueryRefused, match=r"query stopped after 0\.3s \(time limit\)"):
        run_query(store.connection, RUNAWAY, timeout_s=0.3)

    add_goals(store, "g-4")
    assert run_query(store.connection, "SELECT count(*) FROM goals").rows == [(4,)]


def test_a_huge_cross_join_is_stopped_too(store: ProjectionStore) -> None:
    huge = "SELECT count(*) FROM range(100000000) a, range(100000000) b WHERE a.range + b.range < 0"

    with pytest.raises(QueryRefused, match="time limit"):
        run_query(store.connection, huge, timeout_s=0.3)


def test_errors_in_a_query_say_what_is_wrong(store: ProjectionStore) -> None:
    with pytest.raises(QueryRefused, match=r"query failed: .*no_such_table"):
        run_query(store.connection, "SELECT * FROM no_such_table")


def test_a_closed_file_is_queried_read_only(tmp_path: Path) -> None:
    path = tmp_path / "projections.duckdb"
    with ProjectionStore.open(path) as store:
        add_goals(store, "g-1")

    result = run_query(path, "SELECT goal_id, text FROM goals")

    assert result.rows == [("g-1", "goal g-1")]
    with pytest.raises(QueryRefused, match="reaches outside the projections"):
        run_query(path, "SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(QueryRefused, match="time limit"):
        run_query(path, RUNAWAY, timeout_s=0.3)


def test_a_file_held_by_a_writer_in_this_process_says_how_to_query_it(tmp_path: Path) -> None:
    path = tmp_path / "projections.duckdb"
    with ProjectionStore.open(path), pytest.raises(QueryRefused, match="query through"):
        run_query(path, "SELECT 1")


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(QueryRefused, match="no projection database"):
        run_query(tmp_path / "absent.duckdb", "SELECT 1")


def test_an_unlocked_store_is_not_used_for_user_queries() -> None:
    with (
        ProjectionStore.open(":memory:", locked=False) as unlocked,
        pytest.raises(ConfigurationError, match="external access disabled"),
    ):
        run_query(unlocked.connection, "SELECT 1")


def test_a_connection_that_allows_file_access_is_not_used() -> None:
    open_connection = duckdb.connect(":memory:")
    try:
        with pytest.raises(ConfigurationError, match="external access disabled"):
            run_query(open_connection, "SELECT 1")
    finally:
        open_connection.close()
