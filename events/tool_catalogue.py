"""The tools a planner may use: the built-in ones and the latest listing of every MCP server.

Folded from ``tools_listed`` events (pure), so the live planner, ``agora rerun`` and
``agora tools`` all derive the catalogue from the same record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from events.catalog import ToolsListed
from events.tools import BUILTIN_TOOLS, ToolSpec, external_tool, schema_problem

__all__ = ["latest_listings", "tools_of", "with_listed"]


def latest_listings(events: Iterable[ToolsListed]) -> dict[str, ToolsListed]:
    """Server -> its latest listing, from listings in stream order."""
    latest: dict[str, ToolsListed] = {}
    for event in events:
        latest[event.server] = event
    return latest


def tools_of(listing: ToolsListed) -> dict[str, ToolSpec]:
    """A listing's tools as specs (a tool whose schema is unusable is left out)."""
    return {
        tool.name: external_tool(
            tool.name,
            tool.description,
            tool.input_schema,
            origin=listing.origin,
            trusted=listing.trusted,
            default_timeout_s=tool.timeout_s,
        )
        for tool in listing.tools
        if schema_problem(tool.input_schema) is None and tool.name not in BUILTIN_TOOLS
    }


def with_listed(
    listings: Iterable[ToolsListed], builtin: Mapping[str, ToolSpec] = BUILTIN_TOOLS
) -> dict[str, ToolSpec]:
    """The built-in tools plus every server's latest listed tools."""
    catalogue: dict[str, ToolSpec] = {}
    for listing in latest_listings(listings).values():
        catalogue.update(tools_of(listing))
    catalogue.update(builtin)
    return catalogue
