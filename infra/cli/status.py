"""``agora status``: consumer lag, dead letters, projector, services and the nats-server."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from infra.cli.common import app, connect, load_settings, out, run, watch

__all__ = ["status"]


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    monitor: Annotated[
        str | None,
        typer.Option(
            help="nats-server monitoring URL (default: AGORA_NATS_MONITOR_URL, else the "
            "embedded server's)",
        ),
    ] = None,
    stall_after_s: Annotated[
        float,
        typer.Option(
            "--stall-after",
            help="a consumer with work waiting and no acknowledgement this long is stalled",
            min=1.0,
        ),
    ] = 60.0,
    watch_s: Annotated[
        float | None,
        typer.Option("--watch", help="refresh every N seconds until Ctrl-C", min=0.5),
    ] = None,
) -> None:
    """How the running platform is doing. Exits 1 when something needs attention."""
    from infra.clients.status import gather_status, monitor_url_of, store_dir_of

    settings = load_settings()

    async def work() -> dict[str, Any]:
        nc = await connect(settings, "agora-status")
        try:
            return await gather_status(
                nc,
                monitor_url=monitor or settings.nats_monitor_url or monitor_url_of(settings),
                store_dir=store_dir_of(settings),
                stall_after_s=stall_after_s,
            )
        finally:
            await nc.close()

    if watch_s is not None:
        watch(lambda: _print(run(work())), watch_s)
    report = run(work())
    if as_json:
        print(json.dumps(report, default=str))
    else:
        _print(report)
    raise typer.Exit(1 if report["problems"] else 0)


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _print(report: dict[str, Any]) -> None:
    server = report["server"]
    js = server["jetstream"]
    line = f"[bold]nats-server[/] {server.get('server_name') or ''} {server['version']}"
    line += f" at {server['url']}"
    if "connections" in server:
        line += f", {server['connections']} connections, up {server['uptime']}"
    line += (
        f"; JetStream: {js['streams']} streams, {js['consumers']} consumers, "
        f"{js['storage_bytes']:,} bytes stored"
    )
    out.print(line, highlight=False)
    for limit in report.get("storage", []):
        share = limit["used"] / limit["limit"]
        out.print(f"  {limit['what']}: {limit['used']:,} of {limit['limit']:,} bytes ({share:.0%})")

    consumers = _table(
        "consumers", ["service", "stream/consumer", "lag", "ack pending", "redelivered"]
    )
    for row in report["consumers"]:
        if not row["provisioned"]:
            consumers.add_row(row["service"], f"{row['stream']}/{row['consumer']}", "-", "-", "-")
            continue
        consumers.add_row(
            row["service"],
            f"{row['stream']}/{row['consumer']}",
            str(row["pending"]),
            str(row["ack_pending"]),
            str(row["redelivered"]),
        )
    out.print(consumers)

    services = _table(
        "services",
        ["service", "replicas", "consumer", "handled", "failed", "redelivered", "in flight"],
    )
    for name, entry in report["services"].items():
        first = True
        for consumer, counts in entry["consumers"].items() or [("", None)]:
            services.add_row(
                name if first else "",
                str(entry["replicas"]) if first else "",
                consumer,
                *(
                    ("", "", "", "")
                    if counts is None
                    else (
                        str(counts["handled"]),
                        str(counts["failed"]),
                        str(counts["redelivered"]),
                        str(counts["in_flight"]),
                    )
                ),
            )
            first = False
    out.print(services)

    projector = report["projector"]
    if projector["running"]:
        out.print(
            f"[bold]projector[/] at {projector['applied_seq']} of {projector['events_last_seq']}"
            f" (lag {projector['lag']}){' rebuilding' if projector['rebuilding'] else ''}"
        )
    else:
        out.print(f"[bold]projector[/] {projector['error']}")
    dlq = report["dead_letters"]
    out.print(
        f"[bold]dead letters[/] {dlq['records']} record(s), {dlq['redriven']} redriven"
        + (
            f" ({', '.join(f'{c}: {n}' for c, n in dlq['by_consumer'].items())})"
            if dlq["records"]
            else ""
        )
    )
    for problem in report["problems"]:
        out.print(f"[yellow]! {problem}[/]")
    if not report["problems"]:
        out.print("[green]all services answer; no dead letters waiting[/]")
