"""``agora tools``: every tool goals may name, built-in or from an MCP server, with its origin.

MCP tools are read from the log (the executor's ``tools_listed`` events), so the command shows
what the running executor offers, without connecting to any MCP server itself.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.cli.common import app, connect, load_settings, out, run

if TYPE_CHECKING:
    from events.catalog import ToolsListed
    from events.tools import ToolSpec

__all__ = ["tools", "tools_report"]


def tools_report(catalogue: dict[str, ToolSpec], listings: list[ToolsListed]) -> dict[str, Any]:
    """The catalogue and each server's latest listing, as JSON."""
    return {
        "tools": [
            {
                "name": name,
                "origin": spec.origin,
                "trusted": spec.trusted,
                "description": spec.description,
                "args": spec.json_schema(),
            }
            for name, spec in sorted(catalogue.items())
        ],
        "servers": [
            {
                "server": listing.server,
                "origin": listing.origin,
                "transport": listing.transport,
                "where": listing.where,
                "trusted": listing.trusted,
                "protocol_version": listing.protocol_version,
                "tools": [tool.name for tool in listing.tools],
                "skipped": list(listing.skipped),
                "problem": listing.problem,
                "listed_at": listing.occurred_at.isoformat(),
            }
            for listing in sorted(listings, key=lambda listing: listing.server)
        ],
    }


async def _listed() -> tuple[dict[str, ToolSpec], list[ToolsListed]]:
    from events.tool_catalogue import latest_listings, with_listed
    from infra.mcp.catalogue import read_listings

    settings = load_settings()
    nc = await connect(settings, "agora-tools")
    try:
        listings = await read_listings(nc)
    finally:
        await nc.close()
    return with_listed(listings), list(latest_listings(listings).values())


def listed_tools() -> dict[str, ToolSpec]:
    """The built-in tools and the MCP tools the running executor lists."""
    catalogue: dict[str, ToolSpec] = run(_listed())[0]
    return catalogue


@app.command()
def tools(
    as_json: Annotated[bool, typer.Option("--json", help="tools and servers as JSON")] = False,
) -> None:
    """List every tool a goal may name: built-in ones, MCP servers' and A2A agents' (with
    origin)."""
    catalogue, listings = run(_listed())
    report = tools_report(catalogue, listings)
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title_justify="left")
    for column in ("tool", "origin", "grant", "arguments", "description"):
        table.add_column(column, overflow="fold")
    for tool in report["tools"]:
        table.add_row(
            tool["name"],
            tool["origin"],
            "-" if tool["trusted"] else "allowed_tools",
            ", ".join(tool["args"].get("properties", {})),
            tool["description"],
        )
    out.print(table)
    for server in report["servers"]:
        state = f"[red]{server['problem']}[/]" if server["problem"] else "listed"
        out.print(
            f"{_kind(server['origin'])} {server['server']} ({server['transport']}: "
            f"{server['where']}, "
            f"protocol {server['protocol_version'] or '?'}): {len(server['tools'])} tool(s), "
            f"{state}, at {server['listed_at']}"
        )
        for skipped in server["skipped"]:
            out.print(f"  [yellow]left out: {skipped}[/]")


def _kind(origin: str) -> str:
    """What listed the tools, for people: an MCP server, or a remote A2A agent."""
    return "A2A agent" if origin.startswith("a2a:") else "MCP server"
