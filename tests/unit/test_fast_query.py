"""`agora query`'s plain form, read without typer, means what typer reads it as; everything
else is left to typer."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main

import infra.cli.query  # noqa: F401  # registers the command on the app
from infra.cli.common import app
from infra.cli.fast_query import PlainQuery, plain_query

PLAIN = [
    ["query", "SELECT 1"],
    ["query", "SELECT 1", "--format", "json"],
    ["query", "--format=csv", "SELECT 1"],
    ["query", "--max-rows", "007", "SELECT 1", "--format", "table"],
    ["query", "--max-rows=0", ""],
    ["query", "SELECT 'a -- b = c'", "--max-rows", "5"],
]
LEFT_TO_TYPER = [
    ["query"],
    ["query", "--help"],
    ["query", "SELECT 1", "--help"],
    ["query", "SELECT 1", "SELECT 2"],
    ["query", "SELECT 1", "--as-of-seq", "3"],
    ["query", "SELECT 1", "--as-of-time=2026-12-01T00:00:00Z"],
    ["query", "SELECT 1", "--format", "xml"],
    ["query", "SELECT 1", "--format", "JSON"],
    ["query", "SELECT 1", "--format"],
    ["query", "SELECT 1", "--format="],
    ["query", "SELECT 1", "--format", "json", "--format", "csv"],
    ["query", "SELECT 1", "--max-rows", "-1"],
    ["query", "SELECT 1", "--max-rows", "1e3"],
    ["query", "SELECT 1", "--max-rows", " 5"],
    ["query", "SELECT 1", "--max-rows", "+5"],
    ["query", "SELECT 1", "--max-rows", "1_000"],
    ["query", "SELECT 1", "--max-rows", "٣"],  # a digit to Python, not to the fast path
    ["query", "--", "SELECT 1"],
    ["query", "-", "SELECT 1"],
    ["query", "-- a comment\nSELECT 1"],
    ["query", "SELECT 1", "-x"],
    ["query", "SELECT 1", "--max", "5"],
    ["--help", "query", "SELECT 1"],
    ["goals"],
    [],
]


def _typer_reads(argv: list[str]) -> dict[str, Any]:
    group = typer.main.get_command(app)
    parent = group.make_context("agora", list(argv))
    command = group.get_command(parent, argv[0])
    assert command is not None
    return dict(command.make_context(argv[0], list(argv[1:]), parent=parent).params)


@pytest.mark.parametrize("argv", PLAIN)
def test_the_plain_form_is_read_as_typer_reads_it(argv: list[str]) -> None:
    query = plain_query(argv)
    assert isinstance(query, PlainQuery)
    read = _typer_reads(argv)
    assert read == {
        "sql": query.sql,
        "fmt": query.fmt,
        "max_rows": query.max_rows,
        "as_of_seq": None,
        "as_of_time": None,
    }


@pytest.mark.parametrize("argv", LEFT_TO_TYPER)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert plain_query(argv) is None
