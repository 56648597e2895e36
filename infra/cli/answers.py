"""Asking the projector, and printing its rows: what `agora query` and the other reading
commands (goals, trajectory, approvals) share. No typer: the fast `agora query`
(infra/cli/fast_query.py) uses it as the typer commands do."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from infra.cli.exits import EXIT_ROWS_CUT, ClosedPipe
from infra.cli.runtime import connect, connect_wire

if TYPE_CHECKING:
    from collections.abc import Sequence

    from infra.client_settings import ConnectionSettings
    from infra.dashboard.queries import Param

__all__ = ["Answer", "Format", "ask", "print_answer"]


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


async def ask(
    settings: ConnectionSettings, sql: str, max_rows: int, *, params: Sequence[Param] = ()
) -> Answer:
    """``sql`` answered by the projector. One request and its reply go over the lean wire
    client (nats-py costs a command ~25 ms to import); where that client cannot serve, over
    nats-py, whose connection errors say what is wrong."""
    from infra.clients import query

    timeout_s = settings.query_timeout_s + 10
    connection = await connect_wire(settings, "agora-query") or await connect(
        settings, "agora-query"
    )
    try:
        reply = await query.ask(
            connection, sql, max_rows=max_rows, timeout_s=timeout_s, params=params
        )
    finally:
        await connection.close()
    return Answer(reply.columns, reply.rows, reply.truncated, reply.elapsed_ms, reply.last_seq)


def print_answer(answer: Answer, fmt: Format, title: str | None = None) -> None:
    """Print the rows. A result cut at the row limit is never silent: json and csv say so
    on stderr and exit 1 (their reader may not look at the rows' count)."""
    try:
        if fmt is Format.json:
            _print_json(answer)
        elif fmt is Format.csv:
            _print_csv(answer)
        else:
            _print_table(answer, title)
        if answer.truncated and fmt is not Format.table:
            sys.stdout.flush()
    except BrokenPipeError:  # `| head`: 141, as rich's table says it (infra/cli/console.py)
        raise ClosedPipe from None
    if answer.truncated and fmt is not Format.table:
        from infra.cli.console import err

        err.print(
            f"agora: the result has more than the {len(answer.rows)} row(s) printed; "
            "raise --max-rows (up to AGORA_QUERY_MAX_ROWS) or add a LIMIT"
        )
        raise SystemExit(EXIT_ROWS_CUT)


def _print_json(answer: Answer) -> None:
    import json

    rows = [dict(zip(answer.columns, row, strict=True)) for row in answer.rows]
    print(json.dumps(rows, default=str, ensure_ascii=False))


def _print_csv(answer: Answer) -> None:
    import csv

    writer = csv.writer(sys.stdout)
    writer.writerow(answer.columns)
    writer.writerows(answer.rows)


def _print_table(answer: Answer, title: str | None) -> None:
    from rich.table import Table

    from infra.cli.console import out

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
