"""Confines file tools to the workspace directory.

A path must be relative, must not contain ``..``, and must still lie inside the workspace
once symlinks are resolved, so neither ``../etc/passwd`` nor a symlink planted in the
workspace can reach the rest of the filesystem.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from events.errors import ToolError

__all__ = ["resolve_in_workspace"]


def resolve_in_workspace(workspace: Path, relative: str) -> Path:
    """The real path ``relative`` names inside ``workspace``, or a ``ToolError`` saying why not."""
    if "\x00" in relative:
        raise ToolError("path must not contain NUL characters")
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).is_absolute():
        raise ToolError(
            f"absolute paths are not allowed: {relative!r}; give a path relative to the workspace"
        )
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if ".." in parts:
        raise ToolError(f"path must not contain '..': {relative!r}; stay inside the workspace")
    root = workspace.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ToolError(
            f"path {relative!r} resolves outside the workspace (through a symlink); refused"
        )
    return target
