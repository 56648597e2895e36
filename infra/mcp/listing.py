"""From MCP to agora and back, without I/O: a server's tool listing as tool specs, a call's
result as a tool result or a ``ToolError``.

A tool ``get_current_time`` of server ``time`` becomes ``time.get_current_time``, with the
input schema the server listed. A tool whose name or schema agora cannot use is left out with
the reason (``Listing.skipped``), never half-registered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from mcp_types import (
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    Tool,
)

from events.errors import ToolError
from events.tools import ToolSpec, external_tool, schema_problem
from infra.mcp.config import McpServer

__all__ = ["Listing", "qualified", "result_of", "specs_of"]

# What a tool name may hold (the MCP spec's recommendation), so <server>.<tool> stays one token
# for people and planners alike.
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_MAX_NAME = 128


def qualified(server: str, tool: str) -> str:
    return f"{server}.{tool}"


@dataclass(frozen=True, slots=True)
class Listing:
    """What one listing of a server gave agora: specs by qualified name, and what was left out."""

    specs: dict[str, ToolSpec]
    skipped: tuple[str, ...] = ()


def specs_of(server: McpServer, tools: Iterable[Tool]) -> Listing:
    specs: dict[str, ToolSpec] = {}
    skipped: list[str] = []
    for tool in tools:
        problem = _name_problem(tool.name) or schema_problem(tool.input_schema)
        if problem is None and qualified(server.name, tool.name) in specs:
            problem = "listed twice"
        if problem is not None:
            skipped.append(f"{tool.name!r}: {problem}")
            continue
        name = qualified(server.name, tool.name)
        specs[name] = external_tool(
            name,
            (tool.description or tool.title or tool.name).strip(),
            tool.input_schema,
            origin=server.origin,
            trusted=server.trusted,
            default_timeout_s=server.timeout_s,
        )
    return Listing(specs, tuple(skipped))


def _name_problem(name: str) -> str | None:
    if not name or len(name) > _MAX_NAME or not set(name) <= _NAME_CHARS:
        return f"a tool name has 1-{_MAX_NAME} letters, digits, '_', '-' or '.'"
    return None


def result_of(
    server: str, tool: str, result: CallToolResult
) -> tuple[str, dict[str, object] | None]:
    """The text and structured content of a successful call; a tool error as ``ToolError``.

    The text is every content block in order: text as it is, other kinds described (an image
    is never inlined into a task's output). With no content but structured content, the text
    is that JSON, so a later step or the evaluator can read it.
    """
    text = "\n".join(_block_text(block) for block in result.content)
    structured = result.structured_content
    if result.is_error:
        # The server ran the tool and it reported failure: retrying the same call would too.
        raise ToolError(f"MCP tool {qualified(server, tool)} reported an error: {text or '(none)'}")
    if not text and structured is not None:
        text = json.dumps(structured, ensure_ascii=False, sort_keys=True)
    return text, structured


def _block_text(block: object) -> str:  # noqa: PLR0911 -- one answer per content kind
    match block:
        case TextContent(text=text):
            return text
        case ImageContent(mime_type=mime, data=data):
            return f"[image {mime}, {len(data) * 3 // 4} bytes]"
        case AudioContent(mime_type=mime, data=data):
            return f"[audio {mime}, {len(data) * 3 // 4} bytes]"
        case EmbeddedResource(resource=TextResourceContents(text=text)):
            return text
        case EmbeddedResource(resource=resource):
            return f"[resource {resource.uri}]"
        case ResourceLink(uri=uri):
            return f"[resource link {uri}]"
        case _:
            return f"[{type(block).__name__}]"
