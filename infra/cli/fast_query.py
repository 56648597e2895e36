"""`agora query SQL [--format F] [--max-rows N]` without typer, the command's plain form.

typer converts every parameter through pydantic, and building the command with it cost the
query ~55 ms of its start (docs/operations.md, "Command start-up"). The plain form is read
here and asked and printed with what the typer command uses (infra/cli/answers.py); anything
else on the command line (``--help``, time travel, an option given twice, a value typer
would refuse) goes to typer, which answers as it always does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from infra.cli.answers import Format

__all__ = ["PlainQuery", "plain_query", "run_plain_query"]

# The command's defaults, as infra/cli/query.py declares them (a unit test holds them equal).
DEFAULT_FORMAT = Format.table
DEFAULT_MAX_ROWS = 1000
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class PlainQuery:
    sql: str
    fmt: Format = DEFAULT_FORMAT
    max_rows: int = DEFAULT_MAX_ROWS


def plain_query(argv: Sequence[str]) -> PlainQuery | None:
    """The query ``argv`` (the arguments after ``agora``) asks in the plain form, or None
    when it is anything else."""
    if not argv or argv[0] != "query":
        return None
    read = _sql_and_options(argv[1:])
    if read is None:
        return None
    sql, options = read
    fmt = options.get("--format", DEFAULT_FORMAT.value)
    max_rows = options.get("--max-rows", str(DEFAULT_MAX_ROWS))
    if fmt not in Format.__members__ or not _DIGITS.fullmatch(max_rows):
        return None
    return PlainQuery(sql, Format(fmt), int(max_rows))


def _sql_and_options(args: Sequence[str]) -> tuple[str, dict[str, str]] | None:
    """One SQL argument and each option once, as ``--name value`` or ``--name=value``."""
    sql: str | None = None
    options: dict[str, str] = {}
    rest = iter(args)
    for arg in rest:
        if not arg.startswith("-"):
            if sql is not None:
                return None
            sql = arg
            continue
        name, equals, value = arg.partition("=")
        if name not in ("--format", "--max-rows") or name in options:
            return None
        if not equals:
            following = next(rest, None)
            if following is None or following.startswith("-"):
                return None
            value = following
        options[name] = value
    return None if sql is None else (sql, options)


def run_plain_query(query: PlainQuery) -> None:
    from infra.cli.answers import ask, print_answer
    from infra.cli.runtime import load_client_settings, run

    settings = load_client_settings()
    print_answer(run(ask(settings, query.sql, query.max_rows)), query.fmt)
