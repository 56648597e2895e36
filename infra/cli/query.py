"""``agora query``: analytics on the projections.

A module of its own so that `agora query` loads and builds only this command at start
(infra/cli/__init__.py). The plain form of the command does not start typer at all
(infra/cli/fast_query.py); what both ask and print with is in infra/cli/answers.py."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from infra.cli.answers import Answer, Format, ask, print_answer
from infra.cli.common import app, connect, load_settings, run

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = ["query"]


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
        answer = run(ask(settings, sql, max_rows))
    print_answer(answer, fmt)
