"""``agora dlq``: list, show, redrive and purge dead letters. A record's ID is its AGORA_DLQ
sequence."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from infra.cli.common import app, connect, load_settings, out, run

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

__all__ = ["dlq_app"]

dlq_app = typer.Typer(
    help="Dead letters: messages a service gave up on, kept with the original bytes and why.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(dlq_app, name="dlq")

T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _with_nats(work: Callable[[NatsClient], Awaitable[T]], *, operator: bool = False) -> T:
    """Run ``work`` connected as the client, or (``operator``) as admin: re-injecting bytes
    into a service and purging a stream are the operator's (docs/security.md)."""
    from infra.platform.auth import ADMIN, CLIENT

    settings = load_settings()

    async def connected() -> T:
        nc = await connect(settings, "agora-dlq", identity=ADMIN if operator else CLIENT)
        try:
            return await work(nc)
        finally:
            await nc.close()

    result: T = run(connected())
    return result


@dlq_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Every dead letter, oldest first."""
    from infra.clients.dead_letters import describe, list_dead_letters

    records = _with_nats(list_dead_letters)
    rows = [describe(r) for r in records]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} dead letter(s) in AGORA_DLQ", title_justify="left")
    for column in (
        "id",
        "stored at (UTC)",
        "consumer",
        "reason",
        "from",
        "deliv.",
        "redriven",
        "error",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        if "problem" in row:
            table.add_row(
                str(row["id"]), row["stored_at"], "", "unreadable", "", "", "", row["problem"]
            )
            continue
        table.add_row(
            str(row["id"]),
            row["stored_at"][:19].replace("T", " "),
            row["consumer"],
            row["reason"],
            f"{row['stream']}:{row['stream_seq']}",
            str(row["deliveries"]),
            "yes" if row["redriven"] else "",
            row["error"][:120],
        )
    out.print(table)


@dlq_app.command()
def show(
    record_id: Annotated[int, typer.Argument(metavar="ID", help="the record's AGORA_DLQ sequence")],
    as_json: JsonOption = False,
) -> None:
    """One dead letter in full: why, where from, headers and the original bytes."""
    from infra.clients.dead_letters import b64, describe, get_dead_letter, hexdump

    stored = _with_nats(lambda nc: get_dead_letter(nc, record_id))
    detail = describe(stored, full=True)
    letter = stored.letter
    text = detail.get("data_text")
    if as_json:
        print(json.dumps(detail, ensure_ascii=False))
        return
    for key, value in detail.items():
        if key in ("headers", "data_text", "data_b64"):
            continue
        out.print(f"[bold]{key:>15}[/] {value}", highlight=False, markup=True)
    if letter is None:
        return
    out.print("[bold]        headers[/]")
    for name, value in letter.headers.items():
        out.print(f"                {name}: {value}", highlight=False, markup=False)
    if text is not None:
        out.print("[bold]original bytes (text)[/]")
        out.print(text, highlight=False, markup=False)
    else:
        out.print("[bold]original bytes (binary; hex, then base64)[/]")
        for line in hexdump(letter.data):
            out.print(line, highlight=False, markup=False)
        out.print(b64(letter.data), highlight=False, markup=False)


@dlq_app.command()
def redrive(
    record_id: Annotated[
        int | None, typer.Argument(metavar="[ID]", help="the record to redrive")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="every record not redriven yet")] = False,
    as_json: JsonOption = False,
) -> None:
    """Hand dead letters back to the consumer that gave up on them (after a fix). Each record
    is redriven at most once; a second redrive of it reports the first."""
    from infra.clients.dead_letters import redrive as redrive_one
    from infra.clients.dead_letters import redrive_all

    if (record_id is None) == (not every):
        raise typer.BadParameter("give one record ID, or --all")
    if every:
        results = _with_nats(redrive_all, operator=True)
    else:
        assert record_id is not None
        results = [_with_nats(lambda nc: redrive_one(nc, record_id), operator=True)]
    rows = [
        {"id": r.record_seq, "consumer": r.consumer, "copy_seq": r.copy_seq, "already": r.already}
        for r in results
    ]
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        out.print("nothing to redrive")
    for row in rows:
        if row["already"]:
            out.print(
                f"dead letter {row['id']} was redriven before (copy {row['copy_seq']}): "
                "nothing sent again"
            )
        else:
            out.print(
                f"dead letter {row['id']} redriven to {row['consumer']} (copy {row['copy_seq']})"
            )


@dlq_app.command()
def purge(
    older_than: Annotated[
        str, typer.Option("--older-than", help="age of the records to remove: 30s, 12h, 7d, 2w…")
    ],
    as_json: JsonOption = False,
) -> None:
    """Remove dead letters (and redrive copies) stored longer ago than --older-than."""
    from infra.clients.dead_letters import parse_duration, purge_older_than

    age = parse_duration(older_than)
    result = _with_nats(lambda nc: purge_older_than(nc, age, now=datetime.now(UTC)), operator=True)
    if as_json:
        print(json.dumps({"purged": result.purged, "kept_from_seq": result.kept_from_seq}))
    else:
        out.print(f"purged {result.purged} message(s) older than {older_than} from AGORA_DLQ")
