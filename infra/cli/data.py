"""Commands that read the projections: goals, trajectory, replay, export (query is in
infra/cli/query.py)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from events.errors import AgoraError
from events.subjects import EVENTS_STREAM, is_subject_token
from infra.cli.answers import Format, ask, print_answer
from infra.cli.common import app, connect, load_settings, out, run, watch
from infra.cli.query import _parse_time
from projections.statuses import GOAL_STATUSES

if TYPE_CHECKING:
    from rich.progress import Progress

    from events.model import Event
    from infra.settings import Settings

__all__ = ["export", "goals", "replay", "trajectory"]


@app.command()
def goals(
    status: Annotated[str | None, typer.Option(help=" | ".join(GOAL_STATUSES))] = None,
    limit: Annotated[int, typer.Option()] = 50,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    watch_s: Annotated[
        float | None,
        typer.Option("--watch", help="refresh every N seconds until Ctrl-C", min=0.5),
    ] = None,
) -> None:
    """The most recent goals and how they stand."""
    if status is not None and status not in GOAL_STATUSES:
        raise typer.BadParameter(f"--status must be one of {', '.join(GOAL_STATUSES)}")
    where = f"WHERE status = '{status}'" if status else ""  # validated against a fixed list
    sql = (
        "SELECT goal_id, status, iterations, score, submitted_at, finished_at, "
        "left(text, 60) AS text FROM goals "
        f"{where} ORDER BY submitted_at DESC NULLS LAST LIMIT {max(1, limit)}"
    )
    settings = load_settings()
    if watch_s is not None:
        watch(lambda: print_answer(run(ask(settings, sql, limit)), Format.table), watch_s)
    print_answer(run(ask(settings, sql, limit)), fmt)


async def _goal_events(settings: Settings, goal_id: str) -> list[Event]:
    """The goal's events as stored, read from the stream (not the projection)."""
    from events.subjects import goal_events_filter
    from infra.bus.history import read_events

    nc = await connect(settings, "agora-trajectory")
    try:
        # Outputs stay previews: the timeline shows no output.
        filter_subject = goal_events_filter(goal_id)
        return [event async for _, event in read_events(nc, filter_subject, resolve=False)]
    finally:
        await nc.close()


def _print_timeline(goal_id: str, width: int | None) -> None:
    from projections.gantt import render_timeline
    from projections.timeline import build_timeline

    timeline = build_timeline(goal_id, run(_goal_events(load_settings(), goal_id)))
    if timeline is None:
        raise AgoraError(f"no events for goal {goal_id} in the log")
    for line in render_timeline(timeline, width or out.width):
        # Through the console: a reader that left (`| head`) ends the command with 141.
        out.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


@app.command()
def trajectory(
    goal_id: Annotated[str, typer.Argument()],
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    timeline: Annotated[
        bool,
        typer.Option(
            "--timeline",
            help="a Gantt chart of the goal's steps, read from the event stream",
        ),
    ] = False,
    width: Annotated[
        int | None,
        typer.Option("--width", help="--timeline's width (default: the terminal's)", min=30),
    ] = None,
) -> None:
    """A goal's timeline: step, stream sequence (what `agora fork --at-seq` takes), time,
    actor, what happened, duration, tokens. --timeline draws its steps as bars in time."""
    if not is_subject_token(goal_id):
        raise typer.BadParameter("a goal id has only letters, digits, - and _")
    if timeline:
        if fmt is not Format.table:
            raise typer.BadParameter("--timeline draws text: leave out --format")
        _print_timeline(goal_id, width)
        return
    sql = (
        "SELECT step, stream_seq AS seq, strftime(occurred_at, '%H:%M:%S.%g') AS at, actor, "
        "type, summary, "
        "round(duration_ms, 1) AS ms, tokens_in, tokens_out "
        f"FROM trajectory WHERE goal_id = '{goal_id}' ORDER BY step"
    )
    answer = run(ask(load_settings(), sql, 100_000))
    if not answer.rows:
        raise AgoraError(f"no events for goal {goal_id} in the projection (yet)")
    print_answer(answer, fmt, title=f"trajectory of {goal_id}")


def _progress() -> Progress:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[position]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    )


async def _replay_to_file(
    settings: Settings,
    path: Path,
    until_seq: int | None,
    until: datetime | None,
    goal_id: str | None,
) -> None:
    from projections.replay import ReplayProgress, replay_into
    from projections.store import ProjectionStore

    nc = await connect(settings, "agora-replay")
    try:
        with _progress() as bar, ProjectionStore.open(path, locked=False) as store:
            task = bar.add_task("replaying", total=None, rate="", position="")

            def show(p: ReplayProgress) -> None:
                bar.update(
                    task,
                    completed=p.at_seq,
                    total=p.target_seq,
                    rate=f"{p.events_per_s:,.0f} events/s",
                    position=f"seq {p.at_seq:,}/{p.target_seq:,}",
                )

            final = await replay_into(
                store, nc, until_seq=until_seq, until_time=until, goal_id=goal_id, on_progress=show
            )
            show(final)
    finally:
        await nc.close()
    out.print(
        f"wrote {final.applied:,} events up to stream sequence {final.at_seq} into {path} "
        f"({final.events_per_s:,.0f} events/s); open it with duckdb, pandas or a notebook"
    )


async def _rebuild_live(settings: Settings) -> None:
    import asyncio

    from infra.bus.reader import stream_last_seq
    from infra.clients.query import projector_status

    nc = await connect(settings, "agora-replay")
    try:
        target = await stream_last_seq(nc, EVENTS_STREAM)
        await projector_status(nc, "rebuild")
        started = time.perf_counter()
        with _progress() as bar:
            task = bar.add_task("rebuilding", total=target, rate="", position="")
            while True:
                status = await projector_status(nc)
                seq = int(str(status["last_seq"]))
                if not status.get("rebuilding") and seq >= target:
                    break
                rate = f"{seq / max(time.perf_counter() - started, 1e-9):,.0f} events/s"
                bar.update(task, completed=seq, rate=rate, position=f"seq {seq:,}/{target:,}")
                await asyncio.sleep(0.2)  # the progress bar's refresh rate
            bar.update(task, completed=target)
    finally:
        await nc.close()
    out.print(f"the projector rebuilt {target:,} events and follows the stream live again")


@app.command()
def replay(
    to: Annotated[Path | None, typer.Option("--to", help="a new DuckDB file to build")] = None,
    until_seq: Annotated[int | None, typer.Option("--until-seq")] = None,
    until_time: Annotated[str | None, typer.Option("--until-time", help="ISO 8601")] = None,
    goal_id: Annotated[str | None, typer.Option("--goal", help="only this goal's events")] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="rebuild the running projector's database")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="overwrite --to if it exists")] = False,
) -> None:
    """Rebuild projections from the event stream: into a file, or the live projector's own."""
    settings = load_settings()
    if rebuild == (to is not None):
        raise typer.BadParameter("give either --to FILE or --rebuild")
    if rebuild:
        run(_rebuild_live(settings))
        return
    assert to is not None
    if goal_id is not None and not is_subject_token(goal_id):
        raise typer.BadParameter("a goal id has only letters, digits, - and _")
    if to.exists():
        if not force:
            raise AgoraError(f"{to} exists: choose another file or add --force")
        to.unlink()
        Path(f"{to}.wal").unlink(missing_ok=True)
    until = _parse_time(until_time) if until_time else None
    run(_replay_to_file(settings, to, until_seq, until, goal_id))


async def _export(settings: Settings, directory: Path, until_seq: int | None) -> int:
    from projections.replay import replay_into
    from projections.schema import USER_VIEWS
    from projections.store import ProjectionStore

    nc = await connect(settings, "agora-export")
    try:
        with ProjectionStore.open(":memory:", locked=False) as store:
            progress = await replay_into(store, nc, until_seq=until_seq)
            for view in USER_VIEWS:
                target = str(directory / f"{view}.parquet").replace("'", "''")
                store.connection.execute(
                    f"COPY (SELECT * FROM {view}) TO '{target}' (FORMAT parquet)"
                )
    finally:
        await nc.close()
    return progress.at_seq


@app.command()
def export(
    parquet: Annotated[Path, typer.Option("--parquet", help="directory for one file per view")],
    until_seq: Annotated[int | None, typer.Option("--until-seq")] = None,
) -> None:
    """Write every view as Parquet, rebuilt from the event stream."""
    from projections.schema import USER_VIEWS

    parquet.mkdir(parents=True, exist_ok=True)
    at_seq = run(_export(load_settings(), parquet, until_seq))
    views = ", ".join(USER_VIEWS)
    out.print(f"wrote {views} as Parquet to {parquet} (as of stream sequence {at_seq})")
