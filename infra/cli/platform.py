"""Commands that run the platform and drive goals: demo, up, service, goal, tail, schema."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from events.catalog import GoalCompleted, GoalFailed, GoalRejected
from events.codec import to_builtins
from events.model import Event, event_type
from events.schema import json_schemas
from events.subjects import goal_events_filter
from events.summary import summarize
from infra.cli.common import app, load_settings, out, run, stop_on_signals
from infra.settings import Settings
from projections.protocol import QueryReply

__all__ = ["demo", "goal", "schema", "service", "tail", "up"]


def _reply_table(title: str, reply: QueryReply) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for column in reply.columns:
        table.add_column(column, overflow="fold")
    for row in reply.rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    return table


@app.command()
def demo() -> None:
    """Start an embedded NATS server and every service, run sample goals, show what happened."""
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
) -> None:
    """Run the platform: nats-server (unless AGORA_NATS_URL is set), each service a process."""
    from infra.platform.supervisor import Supervisor

    settings = load_settings()
    if cluster > 1 and not settings.embedded:
        raise typer.BadParameter("--cluster starts embedded servers: unset AGORA_NATS_URL")

    async def work() -> None:
        supervisor = Supervisor(settings, cluster=cluster)
        await supervisor.start()
        stop = asyncio.Event()
        stop_on_signals(stop)
        out.print(f"agora is up at [bold]{supervisor.url}[/] — Ctrl-C to stop")
        if supervisor.server is not None and settings.nats_auth:
            out.print(f"NATS credentials per service: {settings.nats_dir / 'credentials'}")
        await stop.wait()
        out.print("stopping…")
        await supervisor.stop()

    run(work())


@app.command()
def service(
    name: Annotated[
        str, typer.Argument(help="planner | executor | memory | evaluator | projector")
    ],
) -> None:
    """Run one service. planner, executor and evaluator scale out as several processes;
    memory runs one; each projector replica needs its own data dir."""
    from infra.platform.runner import run_service

    settings = load_settings()

    async def work() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await run_service(name, settings, stop)

    run(work())


def _parse_step(raw: str) -> dict[str, Any]:
    tool, _, args = raw.partition(":")
    try:
        parsed = json.loads(args) if args.strip() else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--step {raw!r}: arguments must be JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter(f"--step {raw!r}: arguments must be a JSON object")
    return {"tool": tool.strip(), "args": parsed}


def _parse_expect(raw: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return {"contains": raw}
    return parsed if isinstance(parsed, dict) else {"contains": raw}


@app.command()
def goal(
    text: Annotated[str, typer.Argument(help="what the goal should achieve")],
    step: Annotated[
        list[str] | None,
        typer.Option("--step", help='TOOL:JSON_ARGS, e.g. calculator:{"expression":"2+2"}'),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option(help='JSON like {"contains": "391"}, or text the result must contain'),
    ] = None,
    goal_id: Annotated[str | None, typer.Option("--goal-id")] = None,
    max_iterations: Annotated[int | None, typer.Option("--max-iterations")] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="LLM token budget of the goal")
    ] = None,
    max_cost_usd: Annotated[
        float | None, typer.Option("--max-cost-usd", help="LLM cost budget of the goal")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="follow the goal live to its outcome")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of text")] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits")] = 300.0,
) -> None:
    """Submit a goal."""
    from infra.bus.connection import connect
    from infra.clients.goals import AgoraClient

    command: dict[str, Any] = {"text": text}
    if step:
        command["steps"] = [_parse_step(s) for s in step]
    if expect:
        command["expect"] = _parse_expect(expect)
    if goal_id:
        command["goal_id"] = goal_id
    if max_iterations:
        command["max_iterations"] = max_iterations
    if max_tokens is not None:
        command["max_tokens"] = max_tokens
    if max_cost_usd is not None:
        command["max_cost_usd"] = max_cost_usd
    settings = load_settings()

    async def work() -> int:
        nc = await connect(settings, "agora-cli")
        try:
            client = AgoraClient(nc)
            submitted = await client.submit(command)
            if as_json:
                print(
                    json.dumps({"goal_id": submitted.goal_id, "command_id": submitted.command_id})
                )
            else:
                out.print(
                    f"submitted goal [bold]{submitted.goal_id}[/] (command {submitted.command_id})"
                )
            if not wait:
                return 0
            final: Event | None = None
            async with asyncio.timeout(timeout):
                async for event in client.follow(submitted.goal_id):
                    final = event
                    if as_json:
                        print(msgspec.json.encode(to_builtins(event)).decode())
                    else:
                        out.print(
                            f"{event.occurred_at:%H:%M:%S.%f}"[:-3],
                            f"{event_type(event):<22}",
                            summarize(event),
                        )
            return 0 if isinstance(final, GoalCompleted) else 1
        finally:
            await nc.close()

    raise typer.Exit(run(work()))


@app.command()
def tail(
    goal_id: Annotated[str | None, typer.Option("--goal", help="only this goal")] = None,
    from_start: Annotated[bool, typer.Option("--all", help="replay from the first event")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Follow the event log live, step by step."""
    from infra.bus.connection import connect
    from infra.clients.goals import AgoraClient

    settings = load_settings()

    async def work() -> None:
        nc = await connect(settings, "agora-tail")
        stop = asyncio.Event()
        stop_on_signals(stop)
        subject = goal_events_filter(goal_id) if goal_id else "agora.events.>"
        client = AgoraClient(nc)

        async def follow() -> None:
            async for seq, event in client.tail(subject, new_only=not from_start):
                if as_json:
                    print(
                        json.dumps({"stream_seq": seq, **to_builtins(event)}, default=str),
                        flush=True,
                    )
                else:
                    terminal = isinstance(event, GoalCompleted | GoalFailed | GoalRejected)
                    style = "bold" if terminal else ""
                    out.print(
                        f"{seq:>8} {event.goal_id:<20} {event_type(event):<22} {summarize(event)}",
                        style=style,
                    )

        task = asyncio.ensure_future(follow())
        await asyncio.wait(
            [task, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        task.cancel()
        await nc.close()

    run(work())


@app.command()
def schema() -> None:
    """Print the JSON Schema of intake commands, tool arguments and every event type."""
    print(json.dumps(json_schemas(), indent=2))
