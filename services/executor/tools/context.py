"""What a tool implementation may touch: the workspace directory and an HTTP client.

Tools get their capabilities handed in rather than reaching for globals, so tests can point
them at a temporary directory and a local server, and the composition root owns lifetimes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from services.executor.sandbox import Sandbox

__all__ = ["ToolContext", "ToolImplementation", "ToolResult"]


@dataclass(frozen=True, slots=True)
class ToolContext:
    workspace: Path
    http: httpx.AsyncClient
    # Where code-running tools run their programs; None: such tools refuse to run.
    sandbox: Sandbox | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a call returned: its text and, from tools that give one (MCP tools' structured
    content), a JSON object."""

    text: str
    structured: dict[str, Any] | None = None


# The validated arguments are passed in: the tool's pydantic model, or for a tool described
# by a JSON Schema (MCP) the arguments as a dict.
ToolImplementation = Callable[[Any, ToolContext], Awaitable[str | ToolResult]]
