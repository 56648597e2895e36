"""Appends one line to a UTF-8 text file in the workspace, creating it and its parents.

A tool with side effects that is not idempotent: every call adds a line. The fault suite
counts its lines to show that a task attempt runs its tool at most once.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from events.errors import ToolError
from events.tools import AppendLineArgs
from services.executor.tools.context import ToolContext
from services.executor.tools.workspace import resolve_in_workspace

__all__ = ["run"]


async def run(args: AppendLineArgs, ctx: ToolContext) -> str:
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    target = resolve_in_workspace(ctx.workspace, args.path)
    await asyncio.to_thread(_append, target, args.line, args.path)
    return f"appended a line to {args.path}"


def _append(target: Path, line: str, shown: str) -> None:
    if target.is_dir():
        raise ToolError(f"{shown!r} is a directory; give a file path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # One write(2) of a whole line with O_APPEND: concurrent appenders never interleave.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)
    except FileExistsError as exc:
        raise ToolError(f"cannot create the parents of {shown!r}: a file is in the way") from exc
    except NotADirectoryError as exc:
        raise ToolError(f"cannot write {shown!r}: a parent is a file, not a directory") from exc
    except OSError as exc:
        raise ToolError(f"cannot write {shown!r}: {exc.strerror}") from exc
