"""Reads a UTF-8 text file from the workspace."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from events.errors import ToolError
from events.tools import ReadFileArgs
from services.executor.tools.context import ToolContext
from services.executor.tools.workspace import resolve_in_workspace

__all__ = ["MAX_READ_BYTES", "run"]

MAX_READ_BYTES = 1024 * 1024


async def run(args: ReadFileArgs, ctx: ToolContext) -> str:
    target = resolve_in_workspace(ctx.workspace, args.path)
    # File I/O runs in a thread so a slow disk does not stall every other task.
    return await asyncio.to_thread(_read_text, target, args.path)


def _read_text(target: Path, shown: str) -> str:
    try:
        # O_NOFOLLOW: the path was resolved already, so a symlink here was swapped in since.
        # O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(target, flags)
    except FileNotFoundError as exc:
        raise ToolError(f"no such file in the workspace: {shown!r}") from exc
    except OSError as exc:
        raise ToolError(f"cannot open {shown!r}: {exc.strerror}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ToolError(f"{shown!r} is {kind}; read_file reads regular files only")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_READ_BYTES + 1)
    if len(data) > MAX_READ_BYTES:
        raise ToolError(f"{shown!r} is larger than {MAX_READ_BYTES} bytes; read_file refuses it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{shown!r} is not UTF-8 text") from exc
