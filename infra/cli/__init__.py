"""The ``agora`` command line. Each command only translates arguments and prints results."""

from __future__ import annotations

import os
import sys

from events.errors import AgoraError
from infra.cli.exits import (
    EXIT_CLOSED_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    ClosedPipe,
    Interrupted,
)

__all__ = ["COMMANDS", "MODULES", "load_commands", "main"]

# The module that registers each command. `agora query …` imports infra/cli/data.py alone:
# typer builds every registered command's parameters from its annotations at each start, and
# building all of them, with importing their modules, cost ~35 ms of a ~300 ms query start.
# `agora`, `agora --help` and an unknown name load every module (a unit test keeps this
# table equal to what the modules register).
COMMANDS: dict[str, str] = {
    "a2a": "a2a",
    "agui": "agui",
    "query": "query",
    "goals": "data",
    "trajectory": "data",
    "replay": "data",
    "export": "data",
    "cancel": "steer",
    "pause": "steer",
    "resume": "steer",
    "message": "steer",
    "approvals": "approvals",
    "approve": "approvals",
    "deny": "approvals",
    "env": "env",
    "fork": "fork",
    "goal": "goal",
    "tail": "goal",
    "mcp": "mcp",
    "demo": "platform",
    "up": "platform",
    "service": "platform",
    "schema": "platform",
    "rerun": "rerun",
    "redrive": "rerun",
    "settings": "settings",
    "status": "status",
    "tools": "tools",
    "ui": "ui",
    "dlq": "dlq",
    "memory": "memory",
    "metrics": "metrics",
    "schedule": "schedule",
    "traces": "traces",
}
# Every module, in the order `agora --help` lists their commands.
MODULES = tuple(dict.fromkeys(COMMANDS.values()))


def load_commands(argv: list[str]) -> None:
    """Register the command ``argv`` names (its module's), or every command."""
    import importlib

    name = next((arg for arg in argv if not arg.startswith("-")), None)
    for module in (COMMANDS[name],) if name in COMMANDS else MODULES:
        importlib.import_module(f"infra.cli.{module}")


def main() -> None:
    from infra.cli.fast_query import plain_query, run_plain_query

    argv = sys.argv[1:]
    try:
        # `agora query SQL` in its plain form starts without typer (infra/cli/fast_query.py).
        if (query := plain_query(argv)) is not None:
            run_plain_query(query)
            return
        load_commands(argv)
        from infra.cli.common import app

        app()
    except AgoraError as exc:
        _error(f"[red]agora: {exc}[/]")
        sys.exit(EXIT_ERROR)
    except (Interrupted, KeyboardInterrupt):
        _error("[dim]interrupted[/]")
        sys.exit(EXIT_INTERRUPTED)
    except (ClosedPipe, BrokenPipeError):
        # The reader went away (`agora tail | head`): nothing more to say, and no flush at
        # exit may raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_CLOSED_PIPE)


def _error(markup: str) -> None:
    from infra.cli.console import err

    err.print(markup)
