"""The DuckDB file behind the projections: schema, raw batches in, checkpoint with them.

The projector is the only writer. It hands over raw payload bytes; DuckDB decodes them and
derives every table with set-based SQL (``projections.derive``), so Python does nothing per
event. Each batch lands in one transaction together with the last applied stream sequence, so
after a crash the projector resumes exactly after the last batch that committed: nothing lost,
nothing doubled. Events at or below the checkpoint are skipped, which makes replaying a batch
that did commit harmless without any index on the big append-only table.

Opened ``locked`` (the default), the database has external access disabled and its
configuration locked: the projector never reads files or loads extensions, and user queries
run on cursors of this same database (see ``projections.guard``), so SQL can neither reach the
file system nor switch that protection back off. ``locked=False`` is for agora's own exports
(``replay --to FILE``), which run ``COPY ... TO`` themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa

from events.errors import AgoraError
from projections.derive import (
    BATCH_TABLE,
    DERIVATIONS,
    PARSE_BATCH,
    RAW_BATCH,
    READS_ONLY,
    WRITE_EVENTS,
    WRITE_UNDECODABLE,
)
from projections.schema import CHECKPOINT_TABLE, CHECKSUM_VIEWS, DDL, SCHEMA_VERSION, TABLES, VIEWS

__all__ = ["ProjectionStore", "ProjectionWriteError", "connection_config"]

_CHECKPOINT_ID = 1
_ARROW_CHUNK_ROWS = 2048  # DuckDB's vector size


class ProjectionWriteError(AgoraError):
    """A batch could not be written; nothing of it was kept. Retry it or rebuild the store."""


def connection_config(
    *, memory_limit: str | None = None, threads: int | None = None, locked: bool = True
) -> dict[str, Any]:
    """DuckDB settings for a projection database; ``locked``: no file system, no extensions."""
    # The default 16MB write-ahead log makes every few batches compress and rewrite row groups
    # inside the commit (two thirds of a rebuild's time); a larger log checkpoints rarely.
    config: dict[str, Any] = {"checkpoint_threshold": "256MB"}
    if locked:
        config |= {"enable_external_access": False, "lock_configuration": True}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if threads is not None:
        config["threads"] = threads
    return config


def _checksum_sql(view: str) -> str:
    # DuckDB's 64-bit hash of each whole row, combined by sum and xor: independent of row order
    # without sorting a million row digests (an md5 per row, sorted, took ~3 s for 1M events;
    # this takes 0.2 s). The hash is stable within one DuckDB version, which is what comparing
    # a live store with a rebuild needs. The view name comes from schema.CHECKSUM_VIEWS.
    rows = f"SELECT hash(r) AS h FROM {view} AS r"  # noqa: S608
    digest = "printf('%x-%x', coalesce(sum(h), 0), coalesce(bit_xor(h), 0))"
    return f"SELECT count(*), {digest} FROM ({rows})"  # noqa: S608


def _raw_batch(seqs: Sequence[int], payloads: Sequence[bytes]) -> pa.Table:
    if len(seqs) != len(payloads):
        raise ValueError(f"{len(seqs)} stream sequences for {len(payloads)} payloads")
    table = pa.table(
        {
            "stream_seq": pa.array(seqs, type=pa.int64()),
            "payload": pa.array(payloads, type=pa.binary()),
        }
    )
    # DuckDB scans an Arrow table one record batch per thread: in vector-sized batches the
    # JSON parsing of one batch of events runs on every core.
    return pa.Table.from_batches(table.to_batches(max_chunksize=_ARROW_CHUNK_ROWS))


class ProjectionStore:
    """One projection database. Not thread-safe: query from ``connection.cursor()``."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, *, in_memory: bool = False) -> None:
        self._connection = connection
        self._in_memory = in_memory

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        locked: bool = True,
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
        config = connection_config(memory_limit=memory_limit, threads=threads, locked=locked)
        store = cls(duckdb.connect(database, config=config), in_memory=database == ":memory:")
        if store._stored_schema_version() not in (None, SCHEMA_VERSION):
            store.reset()
        else:
            store._in_transaction(store._execute_ddl)
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
        rows = self._connection.execute(
            f"SELECT last_seq FROM {CHECKPOINT_TABLE} WHERE id = ?",  # noqa: S608  a constant
            [_CHECKPOINT_ID],
        ).fetchall()
        return int(rows[0][0]) if rows else 0

    def apply_raw(self, seqs: Sequence[int], payloads: Sequence[bytes]) -> int:
        """Derive every table from the raw events ``payloads`` at stream sequences ``seqs``.

        One transaction: events at or below ``last_seq()`` are skipped, payloads that are no
        JSON object with a string ``type`` and ``goal_id`` go to ``undecodable_events``, the
        checkpoint advances to ``max(seqs)`` (never backwards). Returns how many events were
        applied, i.e. written to ``events``; refused payloads are not counted.
        """
        if not seqs:
            return 0
        batch = _raw_batch(seqs, payloads)
        last_seq = max(seqs)
        connection = self._connection
        # Unregistered outside the transaction: unregistering inside an aborted one would fail
        # and hide the error that aborted it.
        connection.register(RAW_BATCH, batch)
        try:
            connection.execute("BEGIN TRANSACTION")
            try:
                applied = self._write(last_seq)
                connection.execute("COMMIT")
            except BaseException as exc:
                connection.execute("ROLLBACK")
                if isinstance(exc, duckdb.Error):
                    raise ProjectionWriteError(
                        f"could not write the batch ending at stream sequence {last_seq}; "
                        f"nothing of it was kept: {exc}"
                    ) from exc
                raise
        finally:
            connection.unregister(RAW_BATCH)
            connection.unregister(BATCH_TABLE)  # a no-op if the batch was never parsed
        return applied

    def _write(self, last_seq: int) -> int:
        connection = self._connection
        stored_seq = self.last_seq()
        if last_seq <= stored_seq:
            return 0  # a replay of what is already stored
        parsed = connection.sql(PARSE_BATCH, params={"last_seq": stored_seq}).to_arrow_table(
            _ARROW_CHUNK_ROWS
        )
        connection.register(BATCH_TABLE, parsed)  # unregistered by apply_raw, after the end
        [(written,)] = connection.execute(WRITE_EVENTS).fetchall()
        if written < parsed.num_rows:
            connection.execute(WRITE_UNDECODABLE)
        types = set(parsed.column("type").unique().to_pylist())
        for name, statement in DERIVATIONS.items():
            if name not in READS_ONLY or not READS_ONLY[name].isdisjoint(types):
                connection.execute(statement)
        connection.execute(
            f"UPDATE {CHECKPOINT_TABLE} SET last_seq = greatest(last_seq, ?) WHERE id = ?",  # noqa: S608
            [last_seq, _CHECKPOINT_ID],
        )
        return int(written)

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file now.

        DuckDB does this by itself inside the commit that makes the log outgrow
        ``checkpoint_threshold``; calling it while the stream is idle (or after a rebuild)
        keeps that pause out of a later batch and leaves no log to replay on the next start.
        Committed batches are durable either way. An in-memory store has no file: nothing to do.
        """
        if self._in_memory:
            return
        try:
            self._connection.execute("CHECKPOINT")
        except duckdb.Error as exc:
            raise ProjectionWriteError(f"could not checkpoint the projections: {exc}") from exc

    def checksums(self) -> dict[str, str]:
        """``"<rows>:<digest>"`` per user-facing view, independent of row order.

        Two stores that applied the same events, however batched, have equal checksums.
        """
        sums: dict[str, str] = {}
        for view in CHECKSUM_VIEWS:
            [(count, digest)] = self._connection.execute(_checksum_sql(view)).fetchall()
            sums[view] = f"{count}:{digest}"
        return sums

    def reset(self) -> None:
        """Drop every projection table and view and recreate them empty (checkpoint 0)."""

        def recreate() -> None:
            for view in VIEWS:
                self._connection.execute(f"DROP VIEW IF EXISTS {view}")
            # Tables of older layouts too: a name this version no longer uses would linger.
            for table in (*TABLES, "trajectory_log"):
                self._connection.execute(f"DROP TABLE IF EXISTS {table}")
            self._execute_ddl()

        self._in_transaction(recreate)

    def _in_transaction(self, work: Callable[[], None]) -> None:
        connection = self._connection
        connection.execute("BEGIN TRANSACTION")
        try:
            work()
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _execute_ddl(self) -> None:
        for statement in DDL:
            self._connection.execute(statement)
        self._connection.execute(
            f"INSERT INTO {CHECKPOINT_TABLE} (id, last_seq, schema_version) VALUES (?, 0, ?) "  # noqa: S608
            "ON CONFLICT DO NOTHING",
            [_CHECKPOINT_ID, SCHEMA_VERSION],
        ).fetchall()

    def _stored_schema_version(self) -> int | None:
        [(exists,)] = self._connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [CHECKPOINT_TABLE]
        ).fetchall()
        if exists == 0:
            return None
        rows = self._connection.execute(
            f"SELECT schema_version FROM {CHECKPOINT_TABLE} WHERE id = ?",  # noqa: S608
            [_CHECKPOINT_ID],
        ).fetchall()
        return int(rows[0][0]) if rows else None
