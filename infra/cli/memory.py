"""``agora memory search|stats|forget``: ask the memory service, or tell it to forget."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from events.subjects import is_subject_token
from infra.cli.common import app, connect, load_settings, out, run

if TYPE_CHECKING:
    from infra.settings import Settings
    from services.memory.protocol import MemoryReply, MemoryRequest

__all__ = ["forget", "search", "stats"]

memory_app = typer.Typer(
    help="Long-term memory: search it, see its state, forget items.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(memory_app, name="memory")


async def _ask(settings: Settings, request: MemoryRequest) -> MemoryReply:
    from infra.clients.memory import ask_memory

    nc = await connect(settings, "agora-memory-cli")
    try:
        return await ask_memory(nc, request)
    finally:
        await nc.close()


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no time zone: add Z or +01:00")
    return moment


@memory_app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    k: Annotated[int, typer.Option("--k", help="how many items (1-100)")] = 5,
    goal: Annotated[str | None, typer.Option("--goal", help="only items from this goal")] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="observation, lesson… (repeatable)")
    ] = None,
    since: Annotated[str | None, typer.Option(help="recorded at or after (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="recorded before (ISO 8601)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
) -> None:
    """The items memory recalls for QUERY, best first, with their provenance."""
    from services.memory.protocol import MemoryRequest

    request = MemoryRequest(
        op="search",
        query=query,
        k=k,
        goal_id=goal,
        kinds=tuple(kind or ()),
        since=_time(since),
        until=_time(until),
    )
    items = run(_ask(load_settings(), request)).items
    if as_json:
        print(json.dumps([_plain(item) for item in items], default=str, ensure_ascii=False))
        return
    table = Table(title=f"memory: {query}", title_justify="left")
    for column in ("score", "kind", "key", "goal", "text", "source event"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            f"{item.score:.3f}", item.kind, item.key, item.goal_id, item.text, item.source_event_id
        )
    out.print(table)


def _plain(item: Any) -> dict[str, Any]:
    import msgspec

    plain = msgspec.to_builtins(item)
    assert isinstance(plain, dict)
    return plain


@memory_app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """How many items memory holds, what it has forgotten, where its snapshot stands."""
    from services.memory.protocol import MemoryRequest

    figures = run(_ask(load_settings(), MemoryRequest(op="stats"))).stats
    if as_json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        out.print(f"{name:>24}  {value}")


@memory_app.command()
def forget(
    key: Annotated[str | None, typer.Argument(help="the key of the item to forget")] = None,
    goal: Annotated[
        str | None, typer.Option("--goal", help="forget everything learned in this goal")
    ] = None,
    reason: Annotated[str, typer.Option(help="why, recorded in memory_forgotten")] = "",
) -> None:
    """Forget one item (KEY, and every copy of its text) or everything a goal taught (--goal).

    Appends a command to agora.intake.memory.forget; memory records memory_forgotten and
    never recalls the item again, also after a rebuild.
    """
    if (key is None) == (goal is None):
        raise typer.BadParameter("give a KEY or --goal ID, not both")
    if goal is not None and not is_subject_token(goal):
        raise typer.BadParameter("a goal id has only letters, digits, - and _")
    command_id = run(_forget(load_settings(), key, goal, reason))
    what = f"key {key}" if key is not None else f"everything learned in goal {goal}"
    out.print(f"forget {what}: command {command_id} sent")


async def _forget(settings: Settings, key: str | None, goal: str | None, reason: str) -> str:
    from infra.clients.memory import send_forget

    nc = await connect(settings, "agora-memory-cli")
    try:
        return await send_forget(nc, key=key, goal_id=goal, reason=reason)
    finally:
        await nc.close()
