"""``agora settings``: every environment variable agora reads, as the Markdown table that
docs/operations.md holds (``--write`` puts it there)."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from events.errors import ConfigurationError
from infra.cli.common import app, out

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

__all__ = ["BEGIN", "END", "settings", "settings_table", "with_table"]

BEGIN = "<!-- settings: generated from infra/environment.py by `agora settings --write` -->"
END = "<!-- settings: end -->"


def _type_of(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _type_of(args[0])
    if typing.get_origin(annotation) is typing.Literal:
        return " / ".join(f"`{a}`" for a in typing.get_args(annotation))
    names = {bool: "true / false", int: "integer", float: "number", str: "text", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bounds(info: FieldInfo) -> str:
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    found = {
        name: value
        for constraint in info.metadata
        for name in signs
        if (value := getattr(constraint, name, None)) is not None
    }
    if set(found) == {"ge", "le"}:
        return f", {found['ge']} to {found['le']}"
    return "".join(f" {signs[name]} {value}" for name, value in found.items())


def _default_of(info: FieldInfo) -> str:
    default = info.default
    if default is None or default == "":
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    return f"`{default}`"


def settings_table() -> str:
    """The Markdown table of every variable: name, type, default, meaning."""
    from infra.environment import variables

    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, info in variables():
        meaning = (info.description or "").replace("|", "\\|")
        kind = _type_of(info.annotation) + _bounds(info)
        rows.append(f"| `{name}` | {kind} | {_default_of(info)} | {meaning} |")
    return "\n".join(rows)


def with_table(document: str) -> str:
    """``document`` with the text between its settings markers replaced by the table."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ConfigurationError(f"no settings markers ({BEGIN} … {END}) in the document")
    return f"{document[: start + len(BEGIN)]}\n{settings_table()}\n{document[end:]}"


@app.command("settings")
def settings(
    write: Annotated[
        Path | None,
        typer.Option(
            "--write",
            metavar="FILE",
            help="replace the table between the settings markers of this Markdown file",
        ),
    ] = None,
) -> None:
    """Every environment variable agora reads: its type, default and meaning (Markdown)."""
    if write is None:
        print(settings_table())
        return
    write.write_text(with_table(write.read_text(encoding="utf-8")), encoding="utf-8")
    out.print(f"wrote the settings table into {write}")
