"""``agora metrics``: OpenTelemetry metrics of the platform, derived from the event stream and
the service consumers' state, exported over OTLP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from infra.cli.common import app, connect, err, follow_start, load_settings, run, stop_on_signals

if TYPE_CHECKING:
    from infra.metrics.follower import MetricsFollower
    from infra.settings import Settings

__all__ = ["metrics_app"]

metrics_app = typer.Typer(
    help="OpenTelemetry metrics (model tokens and durations, goals, queue depths), sent over "
    "OTLP to the receiver the OTEL_EXPORTER_OTLP_* variables name.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(metrics_app, name="metrics")


async def _with_follower(settings: Settings) -> MetricsFollower:
    from infra.metrics.follower import MetricsFollower
    from infra.metrics.otlp import MetricsTarget
    from infra.platform.runner import VERSION

    target = MetricsTarget(VERSION, settings.otlp_metrics)  # first: a missing SDK says so
    return MetricsFollower(await connect(settings, "agora-metrics"), target)


@metrics_app.command("export")
def export_metrics(
    since: Annotated[
        int, typer.Option("--since", help="count the events from this stream sequence on")
    ] = 1,
) -> None:
    """Export once: the counts and histograms of the log from a stream sequence to its end,
    and every service consumer's queue depth and lag now."""
    settings = load_settings()

    async def work() -> tuple[int, int, str]:
        follower = await _with_follower(settings)
        try:
            last = await follower.export_since(since)
            return follower.measured, last, follower.target.endpoint
        finally:
            follower.target.close()
            await follower.nc.close()

    measured, last, endpoint = run(work())
    err.print(f"exported the metrics of {measured} events up to sequence {last} to {endpoint}")


@metrics_app.command("follow")
def follow_metrics(
    since: Annotated[
        int | None,
        typer.Option("--since", help="count from this stream sequence (default: new events)"),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            min=0.1,
            help="seconds between exports (default: OTEL_METRIC_EXPORT_INTERVAL, else 60)",
        ),
    ] = None,
) -> None:
    """Export the metrics every interval, live, until Ctrl-C."""
    import asyncio

    settings = load_settings()
    interval_s = interval if interval is not None else settings.metric_export_interval_s

    async def work() -> None:
        follower = await _with_follower(settings)
        stop = asyncio.Event()
        stop_on_signals(stop)
        try:
            start = await follow_start(follower.nc, since)
            err.print(
                f"counting from stream sequence {start}, exporting every {interval_s:g} s to "
                f"{follower.target.endpoint}; Ctrl-C stops"
            )
            await follower.follow(start, stop, interval_s)
        finally:
            follower.target.close()
            await follower.nc.close()

    run(work())
