"""read_file / write_file / echo / sleep: the workspace is the only reachable part of the disk."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from events.errors import ToolError
from events.tools import EchoArgs, ReadFileArgs, SleepArgs, WriteFileArgs
from services.executor.tools import echo, read_file, sleep, write_file
from services.executor.tools.context import ToolContext


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    return root


@pytest.fixture
async def ctx(workspace: Path) -> AsyncIterator[ToolContext]:
    async with httpx.AsyncClient() as http:
        yield ToolContext(workspace=workspace, http=http)


async def test_write_then_read_round_trips_and_creates_parents(
    ctx: ToolContext, workspace: Path
) -> None:
    result = await write_file.run(
        WriteFileArgs(path="notes/day 1/todo.txt", content="héllo\n"), ctx
    )

    assert result == "wrote 7 bytes to notes/day 1/todo.txt"
    assert (workspace / "notes" / "day 1" / "todo.txt").read_text("utf-8") == "héllo\n"
    assert await read_file.run(ReadFileArgs(path="notes/day 1/todo.txt"), ctx) == "héllo\n"


async def test_write_replaces_existing_content_and_leaves_no_temporary_files(
    ctx: ToolContext, workspace: Path
) -> None:
    await write_file.run(WriteFileArgs(path="a.txt", content="first, longer content"), ctx)
    await write_file.run(WriteFileArgs(path="a.txt", content="second"), ctx)

    assert (workspace / "a.txt").read_text() == "second"
    assert names_in(workspace) == ["a.txt"]


async def test_write_creates_a_missing_workspace(tmp_path: Path) -> None:
    async with httpx.AsyncClient() as http:
        ctx = ToolContext(workspace=tmp_path / "not-yet", http=http)
        await write_file.run(WriteFileArgs(path="x.txt", content="x"), ctx)
    assert (tmp_path / "not-yet" / "x.txt").read_text() == "x"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../outside.txt", r"must not contain '\.\.'"),
        ("notes/../../outside.txt", r"must not contain '\.\.'"),
        ("../../etc/passwd", r"must not contain '\.\.'"),
        ("..\\outside.txt", r"must not contain '\.\.'"),
        ("/etc/passwd", "absolute paths are not allowed"),
        ("C:\\Windows\\win.ini", "absolute paths are not allowed"),
    ],
)
async def test_paths_escaping_the_workspace_are_refused(
    ctx: ToolContext, tmp_path: Path, path: str, reason: str
) -> None:
    (tmp_path / "outside.txt").write_text("secret")

    with pytest.raises(ToolError, match=reason) as read_error:
        await read_file.run(ReadFileArgs(path=path), ctx)
    with pytest.raises(ToolError, match=reason):
        await write_file.run(WriteFileArgs(path=path, content="overwritten"), ctx)

    assert read_error.value.transient is False
    assert (tmp_path / "outside.txt").read_text() == "secret"


async def test_symlinks_leading_outside_the_workspace_are_refused(
    ctx: ToolContext, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (workspace / "door").symlink_to(outside, target_is_directory=True)
    (workspace / "leak.txt").symlink_to(outside / "secret.txt")

    with pytest.raises(ToolError, match="outside the workspace"):
        await read_file.run(ReadFileArgs(path="door/secret.txt"), ctx)
    with pytest.raises(ToolError, match="outside the workspace"):
        await read_file.run(ReadFileArgs(path="leak.txt"), ctx)
    with pytest.raises(ToolError, match="outside the workspace"):
        await write_file.run(WriteFileArgs(path="door/planted.txt", content="x"), ctx)
    with pytest.raises(ToolError, match="outside the workspace"):
        await write_file.run(WriteFileArgs(path="leak.txt", content="x"), ctx)

    assert names_in(outside) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"


async def test_symlinks_inside_the_workspace_are_followed(
    ctx: ToolContext, workspace: Path
) -> None:
    (workspace / "real.txt").write_text("inside")
    (workspace / "alias.txt").symlink_to(workspace / "real.txt")

    assert await read_file.run(ReadFileArgs(path="alias.txt"), ctx) == "inside"


async def test_reading_problems_have_clear_messages(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "folder").mkdir()
    (workspace / "binary.bin").write_bytes(b"\xff\xfe\x00")

    with pytest.raises(ToolError, match=r"no such file in the workspace: 'missing\.txt'"):
        await read_file.run(ReadFileArgs(path="missing.txt"), ctx)
    with pytest.raises(ToolError, match="is a directory"):
        await read_file.run(ReadFileArgs(path="folder"), ctx)
    with pytest.raises(ToolError, match="not UTF-8 text"):
        await read_file.run(ReadFileArgs(path="binary.bin"), ctx)


async def test_writing_problems_have_clear_messages(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "folder").mkdir()
    (workspace / "file.txt").write_text("x")

    with pytest.raises(ToolError, match="is a directory"):
        await write_file.run(WriteFileArgs(path="folder", content="x"), ctx)
    with pytest.raises(ToolError, match="a file is in the way"):
        await write_file.run(WriteFileArgs(path="file.txt/child.txt", content="x"), ctx)


@pytest.mark.skipif(os.name != "posix", reason="NUL handling is checked on POSIX paths")
async def test_nul_bytes_in_paths_are_refused(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="NUL"):
        await read_file.run(ReadFileArgs(path="a\x00b"), ctx)


async def test_echo_returns_its_text(ctx: ToolContext) -> None:
    assert await echo.run(EchoArgs(text="hello, agora"), ctx) == "hello, agora"


async def test_sleep_reports_how_long_it_slept(ctx: ToolContext) -> None:
    assert await sleep.run(SleepArgs(seconds=0), ctx) == "slept 0s"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
async def test_reading_a_named_pipe_is_refused_instead_of_hanging(
    ctx: ToolContext, workspace: Path
) -> None:
    os.mkfifo(workspace / "pipe")

    with pytest.raises(ToolError, match="not a regular file"):
        await read_file.run(ReadFileArgs(path="pipe"), ctx)


async def test_append_line_adds_one_line_per_call(ctx: ToolContext, workspace: Path) -> None:
    from events.tools import AppendLineArgs
    from services.executor.tools import append_line

    for n in range(3):
        await append_line.run(AppendLineArgs(path="calls/log.txt", line=f"call {n}"), ctx)
    assert (workspace / "calls" / "log.txt").read_text() == "call 0\ncall 1\ncall 2\n"


def test_append_line_refuses_a_newline_inside_the_line() -> None:
    from pydantic import ValidationError

    from events.tools import AppendLineArgs

    with pytest.raises(ValidationError):
        AppendLineArgs(path="x.txt", line="two\nlines")
