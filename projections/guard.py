"""Read-only SQL for users: one SELECT, no file system, bounded in time, rows and memory.

Two layers, so neither has to be perfect alone:

1. ``check_read_only`` asks DuckDB's own parser what the text is (never a regex) and accepts
   exactly one ``SELECT`` statement (``WITH … SELECT``, ``FROM …``, ``DESCRIBE``, ``SHOW``
   parse as SELECT too).
2. ``run_query`` runs it on a connection whose database has external access disabled and its
   configuration locked, so even a SELECT cannot read ``/etc/passwd`` through ``read_csv``,
   and no SQL can switch that back on. Reading a file by path opens it ``read_only``; a live
   projection is queried through a cursor of the projector's own connection (DuckDB refuses a
   second, differently configured connection to a file already open in the process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from events.errors import AgoraError, ConfigurationError
from projections.store import connection_config

__all__ = ["QueryRefused", "QueryResult", "check_read_only", "run_query"]


class QueryRefused(AgoraError):  # noqa: N818  a refusal, not a fault: the name says so
    """A query was not run, or was stopped; the message says why."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows existed than max_rows
    elapsed_ms: float


_WHY_NOT_READ_ONLY = {
    "INSERT": "it would modify data",
    "UPDATE": "it would modify data",
    "DELETE": "it would modify data",
    "MERGE_INTO": "it would modify data",
    "CREATE": "it would change the schema",
    "CREATE_FUNC": "it would change the schema",
    "DROP": "it would change the schema",
    "ALTER": "it would change the schema",
    "ATTACH": "it would attach another database",
    "DETACH": "it would detach a database",
    "COPY": "it would read or write files",
    "COPY_DATABASE": "it would copy a database",
    "EXPORT": "it would write files",
    "LOAD": "it would install or load an extension",  # INSTALL parses as LOAD too
    "EXTENSION": "it would install or load an extension",
    "SET": "it would change settings",
    "VARIABLE_SET": "it would change settings",
    "PRAGMA": "pragmas change settings or run commands",
    "CALL": "it calls a procedure",
    "TRANSACTION": "it controls transactions",
    "EXPLAIN": "EXPLAIN ANALYZE would run the explained statement",
    "VACUUM": "it would rewrite storage",
}


def check_read_only(sql: str) -> str:
    """The single read-only statement in ``sql``, or ``QueryRefused`` saying why not."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"query refused: not valid SQL: {exc}") from exc
    if not statements:
        raise QueryRefused("query refused: no SQL statement given")
    if len(statements) > 1:
        raise QueryRefused(
            f"query refused: found {len(statements)} statements; send exactly one SELECT"
        )
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        kind = statement.type.name
        why = _WHY_NOT_READ_ONLY.get(kind, "it is not a plain query")
        kind = {"LOAD": "INSTALL/LOAD", "MULTI": "multi-statement (e.g. PIVOT)"}.get(kind, kind)
        raise QueryRefused(
            f"query refused: {kind} statements are not allowed ({why}); only SELECT is accepted"
        )
    return statement.query.strip()


def run_query(
    db_path_or_connection: str | Path | duckdb.DuckDBPyConnection,
    sql: str,
    *,
    max_rows: int = 10_000,
    timeout_s: float = 5.0,
    memory_limit: str = "256MB",
    params: Sequence[object] = (),
) -> QueryResult:
    """Run one read-only query, stopping it after ``timeout_s`` and keeping ``max_rows`` rows.
    ``params`` are bound to the statement's placeholders (``?``, ``$1``) by DuckDB.

    Given a path, the file is opened read-only with ``memory_limit`` and one thread. Given a
    connection (the projector's), the query runs on a new cursor of it; that database must
    have been opened with ``connection_config()`` (``ProjectionStore.open`` does), whose
    memory limit then applies instead of ``memory_limit``.
    """
    statement = check_read_only(sql)
    if isinstance(db_path_or_connection, duckdb.DuckDBPyConnection):
        # Everything runs on the new cursor: DuckDB refuses work on a connection that is busy
        # in another thread (the projector writing a batch) instead of waiting.
        cursor = db_path_or_connection.cursor()
        try:
            _require_locked_down(cursor)
        except BaseException:
            cursor.close()
            raise
    else:
        cursor = _open_read_only(Path(db_path_or_connection), memory_limit)
    try:
        return _execute_bounded(cursor, statement, max_rows, timeout_s, params)
    finally:
        cursor.close()


def _open_read_only(path: Path, memory_limit: str) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise QueryRefused(f"query refused: no projection database at {path}")
    try:
        return duckdb.connect(
            str(path),
            read_only=True,
            config=connection_config(memory_limit=memory_limit, threads=1),
        )
    except duckdb.Error as exc:
        raise QueryRefused(
            f"query refused: cannot open {path} read-only ({exc}); while a projector holds the "
            "file, query through the projector instead"
        ) from exc


def _require_locked_down(connection: duckdb.DuckDBPyConnection) -> None:
    row = connection.execute(
        "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"
    ).fetchone()
    if row is None or row[0] or not row[1]:
        raise ConfigurationError(
            "user queries need a database opened with external access disabled and its "
            "configuration locked; open it with ProjectionStore.open or connection_config()"
        )


def _execute_bounded(
    cursor: duckdb.DuckDBPyConnection,
    statement: str,
    max_rows: int,
    timeout_s: float,
    params: Sequence[object] = (),
) -> QueryResult:
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        cursor.interrupt()

    timer = threading.Timer(timeout_s, stop)
    timer.daemon = True
    started = time.perf_counter()
    timer.start()
    try:
        cursor.execute(statement, list(params) if params else None)
        columns = tuple(str(d[0]) for d in cursor.description or ())
        rows = cursor.fetchmany(max_rows + 1)
    except duckdb.InterruptException as exc:
        if timed_out.is_set():
            raise QueryRefused(f"query stopped after {timeout_s}s (time limit)") from exc
        raise QueryRefused(f"query interrupted: {exc}") from exc
    except duckdb.PermissionException as exc:
        raise QueryRefused(
            f"query refused: it reaches outside the projections (files, extensions, "
            f"settings are disabled): {exc}"
        ) from exc
    except duckdb.OutOfMemoryException as exc:
        raise QueryRefused(f"query stopped: it needs more memory than its limit: {exc}") from exc
    except duckdb.Error as exc:
        raise QueryRefused(f"query failed: {exc}") from exc
    finally:
        timer.cancel()
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return QueryResult(
        columns=columns,
        rows=rows[:max_rows],
        truncated=len(rows) > max_rows,
        elapsed_ms=elapsed_ms,
    )
