"""``agora query``: analytics on the projections, and the printing the reading commands share.

A module of its own so that `agora query` loads and builds only this command at start
(infra/cli/__init__.py)."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.cli.common import app, connect, err, load_settings, out, run

if TYPE_CHECKING:
    from collections.abc import Sequence

    from infra.dashboard.queries import Param
    from infra.settings import Settings

__all__ = ["Answer", "Format", "query"]


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@dataclass(frozen=True, slots=True)
class Answer:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float
    last_seq: int


def _print(answer: Answer, fmt: Format, title: str | None = None) -> None:
    """Print the rows. A result cut at the row limit is never silent: json and csv say so
    on stderr and exit 1 (their reader may not look at the rows' count)."""
    if fmt is Format.json:
        rows = [dict(zip(answer.columns, row, strict=True)) for row in answer.rows]
        print(json.dumps(rows, default=str, ensure_ascii=False))
    elif fmt is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(answer.columns)
        writer.writerows(answer.rows)
    else:
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for column in answer.columns:
            table.add_column(column, overflow="fold")
        for row in answer.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)
        more = " (truncated: raise --max-rows or add LIMIT)" if answer.truncated else ""
        out.print(
            f"[dim]{len(answer.rows)} row(s) in {answer.elapsed_ms:.1f} ms, "
            f"as of stream sequence {answer.last_seq}{more}[/]"
        )
    if answer.truncated and fmt is not Format.table:
        sys.stdout.flush()
        err.print(
            f"agora: the result has more than the {len(answer.rows)} row(s) printed; "
            "raise --max-rows (up to AGORA_QUERY_MAX_ROWS) or add a LIMIT"
        )
        raise typer.Exit(1)


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-11-22T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no time zone: add Z or +01:00")
    return moment


async def _ask(
    settings: Settings, sql: str, max_rows: int, *, params: Sequence[Param] = ()
) -> Answer:
    from infra.clients.query import ask

    nc = await connect(settings, "agora-query")
    try:
        reply = await ask(
            nc, sql, max_rows=max_rows, timeout_s=settings.query_timeout_s + 10, params=params
        )
    finally:
        await nc.close()
    return Answer(reply.columns, reply.rows, reply.truncated, reply.elapsed_ms, reply.last_seq)


async def _ask_as_of(
    settings: Settings, sql: str, max_rows: int, until_seq: int | None, until: datetime | None
) -> Answer:
    """Time travel: rebuild the blackboard as it stood then, in memory, and query that."""
    from projections.guard import run_query
    from projections.replay import replay_into
    from projections.store import ProjectionStore

    nc = await connect(settings, "agora-query")
    try:
        # Locked like the projector's own database: the SQL is the user's, untrusted.
        with ProjectionStore.open(":memory:", locked=True) as store:
            progress = await replay_into(store, nc, until_seq=until_seq, until_time=until)
            result = run_query(
                store.connection, sql, max_rows=max_rows, timeout_s=settings.query_timeout_s
            )
    finally:
        await nc.close()
    return Answer(
        list(result.columns),
        [list(r) for r in result.rows],
        result.truncated,
        result.elapsed_ms,
        progress.at_seq,
    )


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="one read-only SELECT or WITH … SELECT statement")],
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv")] = Format.table,
    max_rows: Annotated[int, typer.Option("--max-rows")] = 1000,
    as_of_seq: Annotated[
        int | None, typer.Option("--as-of-seq", help="answer as of this stream sequence")
    ] = None,
    as_of_time: Annotated[
        str | None, typer.Option("--as-of-time", help="answer as of this ISO 8601 time")
    ] = None,
) -> None:
    """Analytics on the projections (goals, tasks, facts, trajectory, events, tool_stats…)."""
    settings = load_settings()
    if as_of_seq is not None or as_of_time is not None:
        until = _parse_time(as_of_time) if as_of_time else None
        answer = run(_ask_as_of(settings, sql, max_rows, as_of_seq, until))
    else:
        answer = run(_ask(settings, sql, max_rows))
    _print(answer, fmt)
