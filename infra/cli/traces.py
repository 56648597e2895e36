"""``agora traces``: goals' OpenTelemetry traces, exported over OTLP from the event stream."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from events.errors import AgoraError
from events.subjects import is_subject_token
from infra.cli.common import (
    app,
    connect,
    err,
    follow_start,
    load_settings,
    run,
    stop_on_signals,
)

if TYPE_CHECKING:
    from infra.settings import Settings
    from infra.traces.follower import Exported, TraceExporter

__all__ = ["traces_app"]

traces_app = typer.Typer(
    help="OpenTelemetry traces of goals (GenAI semantic conventions), sent over OTLP to the "
    "receiver the OTEL_EXPORTER_OTLP_* variables name.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(traces_app, name="traces")

ContentOption = Annotated[
    bool,
    typer.Option("--content", help="also export prompts, completions, tool arguments and outputs"),
]


def _said(exported: Exported) -> None:
    # A plain line: rich's print took 0.09 ms a line, a fifth of the live follower's CPU a goal.
    # (Goal ids are subject tokens: nothing to escape.)
    so_far = "" if exported.ended else " so far (still running)"
    sys.stdout.write(f"{exported.goal_id}: {exported.spans} spans{so_far}\n")
    sys.stdout.flush()


async def _with_exporter(settings: Settings, content: bool) -> TraceExporter:
    from infra.platform.runner import VERSION
    from infra.traces.follower import TraceExporter
    from infra.traces.otlp import TraceTarget

    target = TraceTarget(VERSION, settings.otlp)  # first: a missing SDK says so at once
    return TraceExporter(
        await connect(settings, "agora-traces"),
        target,
        content=content,
        max_events=settings.trace_goal_max_events,
        max_age_s=settings.trace_goal_max_age_s,
    )


@traces_app.command("export")
def export_traces(
    goal_id: Annotated[str | None, typer.Option("--goal", help="one goal's trace")] = None,
    since: Annotated[
        int | None,
        typer.Option("--since", help="every goal with an event at this stream sequence or later"),
    ] = None,
    content: ContentOption = False,
) -> None:
    """Export traces once: one goal's, or a backfill of every goal from a stream sequence.
    Exporting a goal again sends the same spans (ids come from the log)."""
    if (goal_id is None) == (since is None):
        raise typer.BadParameter("give either --goal GOAL or --since SEQ")
    if goal_id is not None and not is_subject_token(goal_id):
        raise typer.BadParameter("a goal id has only letters, digits, - and _")
    settings = load_settings()

    async def work() -> tuple[int, int, str]:
        exporter = await _with_exporter(settings, content)
        try:
            if goal_id is not None:
                done = await exporter.export_goal(goal_id)
                if not done.spans:
                    raise AgoraError(f"no events for goal {goal_id} in the log")
                _said(done)
                return 1, done.spans, exporter.target.endpoint
            exported, _ = await exporter.backfill(since or 1, _said)
            return len(exported), sum(e.spans for e in exported), exporter.target.endpoint
        finally:
            exporter.target.close()
            await exporter.nc.close()

    goals, spans, endpoint = run(work())
    err.print(f"exported {spans} spans of {goals} goal(s) to {endpoint}")


@traces_app.command("follow")
def follow_traces(
    since: Annotated[
        int | None,
        typer.Option("--since", help="start at this stream sequence (default: new events)"),
    ] = None,
    content: ContentOption = False,
) -> None:
    """Export each goal's trace as the goal ends, live, until Ctrl-C."""
    import asyncio

    settings = load_settings()

    async def work() -> None:
        exporter = await _with_exporter(settings, content)
        stop = asyncio.Event()
        stop_on_signals(stop)
        try:
            start = await follow_start(exporter.nc, since)
            err.print(
                f"following from stream sequence {start}, exporting to "
                f"{exporter.target.endpoint}; Ctrl-C stops"
            )
            from infra.platform.runner import settle_long_lived_objects

            # As a service does: the collector walked the SDK's and the CLI's modules at
            # every full collection, a sixth of the follower's CPU.
            settle_long_lived_objects()
            await exporter.follow(start, stop, _said)
        finally:
            exporter.target.close()
            await exporter.nc.close()

    run(work())
