"""Commands that run the platform: demo, up, service, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra.cli.common import app, connect, err, load_settings, out, run, stop_on_signals
from infra.cli.ui import dashboard_token

if TYPE_CHECKING:
    import asyncio

    from rich.table import Table

    from infra.settings import Settings
    from projections.protocol import QueryReply

__all__ = ["demo", "schema", "service", "up"]

READY_WITHIN_S = 60.0
DASHBOARD_WITHIN_S = 15.0


def _reply_table(title: str, reply: QueryReply) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", expand=False)
    for column in reply.columns:
        table.add_column(column, overflow="fold")
    for row in reply.rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    return table


@app.command()
def demo() -> None:
    """Start an embedded NATS server and every service, run sample goals, show what happened."""
    from events.catalog import GoalCompleted
    from events.summary import summarize
    from infra.platform.demo import run_demo

    settings = load_settings()
    out.print("[bold]agora demo[/]: embedded nats-server + planner, executor, memory, evaluator,")
    out.print("projector; three sample goals, then their trajectories from the DuckDB projection")
    out.print(_llm_line(settings) + "\n")
    report = run(run_demo(settings))
    for goal in report.goals:
        colour = "green" if isinstance(goal.outcome, GoalCompleted) else "red"
        title = f"[bold]{goal.title}[/] — {goal.goal_id} ({goal.elapsed_ms:.0f} ms)\n{goal.text}"
        out.print(_reply_table(title, goal.trajectory))
        out.print(f"[{colour}]→ {summarize(goal.outcome)}[/]\n")
    out.print(
        _reply_table(
            "[bold]analytics[/]: agora query 'SELECT … FROM tool_stats'", report.tool_stats
        )
    )
    if report.all_completed:
        out.print("[green]every sample goal completed[/]")
    else:
        out.print("[red]a sample goal did not complete[/]")
    raise typer.Exit(0 if report.all_completed else 1)


def _llm_line(settings: Settings) -> str:
    if not settings.llm_endpoints:
        return "no LLM configured (AGORA_LLM_BASE_URL unset): the rule-based strategies run"
    chain = " -> ".join(f"{e.name} at {e.base_url}" for e in settings.llm_endpoints)
    return f"LLM: {chain}; the planner, ReAct tasks and the judge ask it"


@app.command()
def up(
    cluster: Annotated[
        int,
        typer.Option(
            help="run N embedded nats-server nodes as one JetStream cluster (R3 streams)",
            min=0,
        ),
    ] = 0,
    ui: Annotated[
        bool | None,
        typer.Option(
            "--ui/--no-ui", help="serve the web dashboard too, agora ui (default: AGORA_UI, on)"
        ),
    ] = None,
    ui_host: Annotated[
        str | None,
        typer.Option(
            help="the dashboard's address, beyond loopback it needs AGORA_UI_TOKEN "
            "(default: AGORA_UI_HOST, else loopback)",
        ),
    ] = None,
    ui_port: Annotated[
        int | None,
        typer.Option(help="the dashboard's port, 0: any free port (default: AGORA_UI_PORT)"),
    ] = None,
) -> None:
    """Run the platform: nats-server (unless AGORA_NATS_URL is set), each service a process,
    and the web dashboard (on loopback unless --ui-host says otherwise; --no-ui: none)."""
    import asyncio
    import dataclasses

    from infra.platform.auth import CLIENT, credentials_path
    from infra.platform.supervisor import DashboardBinding, Supervisor

    settings = load_settings()
    if cluster > 1 and not settings.embedded:
        raise typer.BadParameter("--cluster starts embedded servers: unset AGORA_NATS_URL")
    endpoints = settings.endpoints
    ui_host = ui_host or endpoints.ui_host
    ui_port = endpoints.ui_port if ui_port is None else ui_port
    dashboard = DashboardBinding(ui_host, ui_port) if (endpoints.ui if ui is None else ui) else None
    if dashboard is not None:
        # Refused now rather than by a child that would restart forever: beyond loopback the
        # dashboard needs its token.
        dashboard_token(settings, host=ui_host, token_file=None)

    async def work() -> None:
        supervisor = Supervisor(settings, cluster=cluster, dashboard=dashboard)
        if dashboard is not None:
            from infra.dashboard.server import url_file

            url_file(settings.data_dir).unlink(missing_ok=True)  # a killed run's
        await supervisor.start()
        stop = asyncio.Event()
        stop_on_signals(stop)
        ready = dataclasses.replace(settings, nats_urls=(supervisor.url,))
        await _until_queries_answer(ready, stop)
        out.print(f"agora is up at [bold]{supervisor.url}[/] — Ctrl-C to stop")
        if supervisor.server is not None and settings.nats_auth:
            client = credentials_path(settings.nats_dir, CLIENT)
            out.print(f"clients connect as user [bold]client[/], password in {client}")
            out.print('in a shell: eval "$(agora env)" sets AGORA_NATS_URL/_USER/_PASSWORD')
        if dashboard is not None:
            await _announce_dashboard(settings, stop)
        await stop.wait()
        out.print("stopping…")
        await supervisor.stop()

    run(work())


async def _announce_dashboard(settings: Settings, stop: asyncio.Event) -> None:
    """Print the dashboard's URL once it listens (its URL file appears), waiting at most
    DASHBOARD_WITHIN_S."""
    import asyncio
    import time

    from infra.dashboard.server import url_file

    where = url_file(settings.data_dir)
    deadline = time.monotonic() + DASHBOARD_WITHIN_S
    while not (url := _read_url(where)):
        if stop.is_set():
            return
        if time.monotonic() > deadline:
            err.print("[yellow]the dashboard did not start listening yet: see its log[/]")
            return
        await asyncio.sleep(0.05)  # polling for the child's URL file, with a deadline
    out.print(f"the dashboard at [bold]{url}[/]")


def _read_url(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


async def _until_queries_answer(settings: Settings, stop: asyncio.Event) -> None:
    """Wait (at most READY_WITHIN_S) until the projector answers: "up" then means that a
    client can submit, follow and query at once."""
    import asyncio
    import time

    from infra.clients.query import QueryFailedError, ask

    nc = await connect(settings, "agora-up-ready")
    deadline = time.monotonic() + READY_WITHIN_S
    try:
        while not stop.is_set():
            try:
                await ask(nc, "SELECT 1", timeout_s=2.0)
            except QueryFailedError:
                if time.monotonic() > deadline:
                    err.print("[yellow]the projector does not answer queries yet[/]")
                    return
                await asyncio.sleep(0.1)  # polling for the projector, with a deadline
            else:
                return
    finally:
        await nc.close()


@app.command()
def service(
    name: Annotated[
        str, typer.Argument(help="planner | executor | memory | evaluator | projector")
    ],
) -> None:
    """Run one service. planner, executor and evaluator scale out as several processes;
    memory runs one; each projector replica needs its own data dir."""
    import asyncio

    from infra.platform.runner import run_service

    settings = load_settings()

    async def work() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await run_service(name, settings, stop)

    run(work())


@app.command()
def schema(
    asyncapi: Annotated[
        bool,
        typer.Option(
            "--asyncapi", help="the AsyncAPI 3 document of every subject, headers, permissions"
        ),
    ] = False,
    listed: Annotated[
        bool,
        typer.Option(
            "--listed", help="also the MCP servers' tools the running executor lists (agora tools)"
        ),
    ] = False,
) -> None:
    """Print the JSON Schema of intake commands, tool arguments and every event type."""
    if asyncapi:
        from infra.contract.asyncapi import asyncapi_document

        print(json.dumps(asyncapi_document(), indent=2))
        return
    from events.schema import json_schemas

    if listed:
        from infra.cli.tools import listed_tools

        print(json.dumps(json_schemas(listed_tools()), indent=2))
        return
    print(json.dumps(json_schemas(), indent=2))
