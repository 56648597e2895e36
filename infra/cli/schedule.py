"""``agora schedule add|list|show|remove``: goals nats-server submits on time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from infra.cli.common import app, connect, err, load_settings, out, run

if TYPE_CHECKING:
    from infra.clients.schedules import Schedule

__all__ = ["add", "list_", "remove", "show"]

schedule_app = typer.Typer(
    help="Schedules: goals the NATS server submits on a cron line, an interval or at a time.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(schedule_app, name="schedule")

NameArgument = Annotated[str, typer.Argument(help="the schedule's name (letters, digits, - _)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
# What `agora goal` takes but a schedule cannot: each firing gets its own ids, and nobody
# waits for a goal that has not started.
_GOAL_ONLY = {"goal_id": "--goal-id", "wait": "--wait", "as_json": "--json"}


def _goal_from(args: list[str]) -> dict[str, Any]:
    """The goal after ``--``, read exactly as ``agora goal`` reads its arguments."""
    from infra.cli.goal import goal_command

    # The very parser of `agora goal` (its --help and usage errors included).
    goal = typer.main.get_command(app).commands["goal"]  # type: ignore[attr-defined]
    context = goal.make_context("agora schedule add NAME … --", list(args))
    given = {
        option
        for field, option in _GOAL_ONLY.items()
        if context.params.get(field) not in (None, False)
    }
    if given:
        raise typer.BadParameter(
            f"{', '.join(sorted(given))} cannot be scheduled: each firing is a goal of its own"
        )
    return goal_command(**context.params)


@schedule_app.command()
def add(
    name: NameArgument,
    goal: Annotated[
        list[str] | None,
        typer.Argument(help="after --: the goal, as for agora goal (TEXT, --step, --expect…)"),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(help='a cron line: "0 9 * * MON-FRI" (five fields) or with seconds first'),
    ] = None,
    every: Annotated[
        str | None, typer.Option(help="an interval: 30s, 10m, 2h (at least 1s)")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="once, at this time: 2026-12-24T18:00:00Z (in the future)")
    ] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="the cron line's time zone: Europe/Berlin")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="replace a schedule of the same name")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Store a schedule: the NATS server submits the goal on time, each firing once."""
    from events.schedules import parse_schedule
    from infra.clients.schedules import add_schedule

    spec = parse_schedule(now=datetime.now(UTC), cron=cron, every=every, at=at, time_zone=tz)
    if not goal:
        raise typer.BadParameter("give the goal after --, as for agora goal: -- 'TEXT' --step …")
    command = _goal_from(goal)
    settings = load_settings()

    async def work() -> Schedule:
        nc = await connect(settings, "agora-schedule")
        try:
            return await add_schedule(nc, name, spec, command, replace=replace)
        finally:
            await nc.close()

    stored = run(work())
    if as_json:
        print(json.dumps(stored.to_json()), flush=True)
    else:
        zone = f" ({stored.time_zone})" if stored.time_zone else ""
        out.print(f"schedule [bold]{stored.name}[/]: {stored.pattern}{zone}")


@schedule_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Every schedule, with its goal's text."""
    from infra.clients.schedules import list_schedules

    settings = load_settings()

    async def work() -> list[Schedule]:
        nc = await connect(settings, "agora-schedule")
        try:
            return await list_schedules(nc)
        finally:
            await nc.close()

    schedules = run(work())
    if as_json:
        print(json.dumps([s.to_json() for s in schedules]), flush=True)
        return
    if not schedules:
        out.print("no schedules")
        return
    table = Table("name", "schedule", "time zone", "goal", "since")
    for s in schedules:
        text = str(s.goal.get("text", ""))
        table.add_row(
            s.name,
            s.pattern,
            s.time_zone or "UTC",
            text[:60],
            s.stored_at.strftime("%Y-%m-%d %H:%M:%SZ"),
        )
    out.print(table)


@schedule_app.command()
def show(name: NameArgument, as_json: JsonOption = False) -> None:
    """One schedule and the goal it submits (exit 1: no such schedule)."""
    from infra.clients.schedules import get_schedule

    settings = load_settings()

    async def work() -> Schedule | None:
        nc = await connect(settings, "agora-schedule")
        try:
            return await get_schedule(nc, name)
        finally:
            await nc.close()

    found = run(work())
    if found is None:
        err.print(f"[red]agora: no schedule {name!r}[/]")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(found.to_json()), flush=True)
        return
    out.print(f"schedule [bold]{found.name}[/]: {found.pattern} ({found.time_zone or 'UTC'})")
    out.print(f"stored {found.stored_at.isoformat()} (intake sequence {found.seq})")
    out.print_json(json.dumps(dict(found.goal)))


@schedule_app.command()
def remove(name: NameArgument) -> None:
    """Remove a schedule: it fires no more (exit 1: no such schedule)."""
    from infra.clients.schedules import remove_schedule

    settings = load_settings()

    async def work() -> bool:
        nc = await connect(settings, "agora-schedule")
        try:
            return await remove_schedule(nc, name)
        finally:
            await nc.close()

    if not run(work()):
        err.print(f"[red]agora: no schedule {name!r}[/]")
        raise typer.Exit(1)
    out.print(f"removed schedule [bold]{name}[/]")
