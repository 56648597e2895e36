"""Writes a UTF-8 text file in the workspace, creating parent directories.

The content goes to a temporary file that is then renamed over the target, so a crash
never leaves a half-written file behind (the tool has side effects: see the executor).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from events.errors import ToolError
from events.tools import WriteFileArgs
from services.executor.tools.context import ToolContext
from services.executor.tools.workspace import resolve_in_workspace

__all__ = ["run"]


async def run(args: WriteFileArgs, ctx: ToolContext) -> str:
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    target = resolve_in_workspace(ctx.workspace, args.path)
    size = await asyncio.to_thread(_write_text, target, args.content, args.path)
    return f"wrote {size} bytes to {args.path}"


def _write_text(target: Path, content: str, shown: str) -> int:
    if target.is_dir():
        raise ToolError(f"{shown!r} is a directory; give a file path")
    data = content.encode("utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
        ) as handle:
            temporary = Path(handle.name)
            handle.write(data)
        try:
            temporary.replace(target)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
    except FileExistsError as exc:
        raise ToolError(f"cannot create the parents of {shown!r}: a file is in the way") from exc
    except NotADirectoryError as exc:
        raise ToolError(f"cannot write {shown!r}: a parent is a file, not a directory") from exc
    except OSError as exc:
        raise ToolError(f"cannot write {shown!r}: {exc.strerror}") from exc
    return len(data)
