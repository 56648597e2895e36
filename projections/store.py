"""The DuckDB file behind the projections: schema, batched writes with their checkpoint.

The projector is the only writer. Each batch lands in one transaction together with the last
applied stream sequence, so after a crash the projector resumes exactly after the last batch
that committed: nothing lost, nothing doubled. Writes are idempotent anyway (inserts ignore
rows they already hold, upserts ignore rows older than what is stored), so replaying a batch
that did commit changes nothing either.

The database is opened with external access disabled and its configuration locked: the
projector never reads files or loads extensions, and user queries run on cursors of this same
database (see ``projections.guard``), so SQL can neither reach the file system nor switch that
protection back off.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from events.errors import AgoraError
from projections.batch import Batch
from projections.schema import (
    CHECKPOINT_TABLE,
    CHECKSUM_VIEWS,
    DDL,
    SCHEMA_VERSION,
    TABLES,
    VIEWS,
    Merge,
    TableSpec,
)

__all__ = ["ProjectionStore", "ProjectionWriteError", "connection_config"]

_CHECKPOINT_ID = 1


class ProjectionWriteError(AgoraError):
    """A batch could not be written; nothing of it was kept. Retry it or rebuild the store."""


def connection_config(
    *, memory_limit: str | None = None, threads: int | None = None
) -> dict[str, Any]:
    """DuckDB settings for a projection database: no file system, no extensions, locked."""
    config: dict[str, Any] = {"enable_external_access": False, "lock_configuration": True}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if threads is not None:
        config["threads"] = threads
    return config


def _merge_sql(column: str, merge: Merge) -> str:
    match merge:
        case Merge.LATEST:
            return f"{column} = coalesce(excluded.{column}, t.{column})"
        case Merge.FIRST:
            return f"{column} = coalesce(t.{column}, excluded.{column})"
        case Merge.MAX:
            return f"{column} = greatest(t.{column}, excluded.{column})"


def _write_sql(spec: TableSpec, source: str) -> str:
    columns = ", ".join(spec.column_names)
    # Identifiers come from schema.TABLES, never from input.
    insert = f"INSERT INTO {spec.name} AS t ({columns}) SELECT {columns} FROM {source}"  # noqa: S608
    if spec.kind == "insert":
        return f"{insert} ON CONFLICT DO NOTHING"
    updates = ", ".join(
        _merge_sql(column.name, column.merge)
        for column in spec.columns
        if column.name not in spec.key
    )
    # A row older than the stored one (a batch replayed after a later one) changes nothing.
    newer_only = " WHERE excluded.last_seq >= t.last_seq" if "last_seq" in spec.column_names else ""
    return f"{insert} ON CONFLICT ({', '.join(spec.key)}) DO UPDATE SET {updates}{newer_only}"


def _source_name(table: str) -> str:
    return f"_incoming_{table}"


_WRITES = {name: _write_sql(spec, _source_name(name)) for name, spec in TABLES.items()}


def _checksum_sql(view: str) -> str:
    # md5 per row, then md5 over the sorted row hashes: independent of physical row order.
    # The view name comes from schema.CHECKSUM_VIEWS, never from input.
    rows = f"SELECT md5(CAST(to_json(r) AS VARCHAR)) AS h FROM {view} AS r"  # noqa: S608
    digest = "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), ''))"
    return f"{digest} FROM ({rows})"


class ProjectionStore:
    """One projection database. Not thread-safe: query from ``connection.cursor()``."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._connection = connection

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> ProjectionStore:
        """Open (or create) the database at ``path`` (or ``":memory:"``) with its schema.

        A file written by another ``SCHEMA_VERSION`` is emptied, checkpoint included, so the
        projector rebuilds it from the start of the stream: projections are derived data.
        """
        database = str(path)
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        connection = duckdb.connect(
            database, config=connection_config(memory_limit=memory_limit, threads=threads)
        )
        store = cls(connection)
        if store._stored_schema_version() not in (None, SCHEMA_VERSION):
            store.reset()
        else:
            store._create_schema()
        return store

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        return self._connection

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ProjectionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def last_seq(self) -> int:
        """The stream sequence of the last event applied (0 for an empty store)."""
        row = self._connection.execute(
            "SELECT last_seq FROM projection_checkpoint WHERE id = ?", [_CHECKPOINT_ID]
        ).fetchone()
        return int(row[0]) if row else 0

    def apply_batch(self, batch: Batch, last_seq: int) -> None:
        """Write every row of ``batch`` and the checkpoint ``last_seq`` atomically.

        The checkpoint never moves backwards: replaying an older batch leaves it as it was.
        """
        tables = batch.to_arrow()
        connection = self._connection
        connection.execute("BEGIN TRANSACTION")
        try:
            for name, table in tables.items():
                if table.num_rows == 0:
                    continue
                connection.register(_source_name(name), table)
                try:
                    connection.execute(_WRITES[name])
                finally:
                    connection.unregister(_source_name(name))
            connection.execute(
                "UPDATE projection_checkpoint SET last_seq = greatest(last_seq, ?) WHERE id = ?",
                [last_seq, _CHECKPOINT_ID],
            )
            connection.execute("COMMIT")
        except BaseException as exc:
            connection.execute("ROLLBACK")
            if isinstance(exc, duckdb.Error):
                raise ProjectionWriteError(
                    f"could not write the batch ending at stream sequence {last_seq}; "
                    f"nothing of it was kept: {exc}"
                ) from exc
            raise

    def checksums(self) -> dict[str, str]:
        """``"<rows>:<md5>"`` per user-facing view, independent of row order.

        Two stores that applied the same events, however batched, have equal checksums.
        """
        sums: dict[str, str] = {}
        for view in CHECKSUM_VIEWS:
            row = self._connection.execute(_checksum_sql(view)).fetchone()
            assert row is not None  # an aggregate always returns a row
            sums[view] = f"{row[0]}:{row[1]}"
        return sums

    def reset(self) -> None:
        """Drop every projection table and view and recreate them empty (checkpoint 0)."""
        connection = self._connection
        connection.execute("BEGIN TRANSACTION")
        try:
            for view in VIEWS:
                connection.execute(f"DROP VIEW IF EXISTS {view}")
            for table in (*TABLES, CHECKPOINT_TABLE):
                connection.execute(f"DROP TABLE IF EXISTS {table}")
            self._execute_ddl()
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _create_schema(self) -> None:
        connection = self._connection
        connection.execute("BEGIN TRANSACTION")
        try:
            self._execute_ddl()
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _execute_ddl(self) -> None:
        for statement in DDL:
            self._connection.execute(statement)
        self._connection.execute(
            "INSERT INTO projection_checkpoint (id, last_seq, schema_version) VALUES (?, 0, ?) "
            "ON CONFLICT DO NOTHING",
            [_CHECKPOINT_ID, SCHEMA_VERSION],
        )

    def _stored_schema_version(self) -> int | None:
        exists = self._connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [CHECKPOINT_TABLE]
        ).fetchone()
        if not exists or exists[0] == 0:
            return None
        row = self._connection.execute(
            "SELECT schema_version FROM projection_checkpoint WHERE id = ?", [_CHECKPOINT_ID]
        ).fetchone()
        return int(row[0]) if row else None
