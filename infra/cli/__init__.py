"""The ``agora`` command line. Each command only translates arguments and prints results."""

from __future__ import annotations

import os
import sys

from events.errors import AgoraError
from infra.cli.common import ClosedPipe, Interrupted, app, err

__all__ = ["COMMANDS", "app", "load_commands", "main"]

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


# Exit codes: 0 done, 1 a goal failed or something needs attention, 2 an error (the message
# says what to do), 3 --wait gave up while the goal runs on, 130 Ctrl-C, 141 a closed pipe.
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141


def main() -> None:
    load_commands(sys.argv[1:])
    try:
        app()
    except AgoraError as exc:
        err.print(f"[red]agora: {exc}[/]")
        sys.exit(EXIT_ERROR)
    except (Interrupted, KeyboardInterrupt):
        err.print("[dim]interrupted[/]")
        sys.exit(EXIT_INTERRUPTED)
    except (ClosedPipe, BrokenPipeError):
        # The reader went away (`agora tail | head`): nothing more to say, and no flush at
        # exit may raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_CLOSED_PIPE)
