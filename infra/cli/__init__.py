"""The ``agora`` command line. Each command only translates arguments and prints results."""

from __future__ import annotations

import os
import sys

from events.errors import AgoraError
from infra.cli import (
    a2a,
    agui,
    approvals,
    data,
    dlq,
    env,
    fork,
    goal,
    mcp,
    memory,
    metrics,
    platform,
    rerun,
    schedule,
    settings,
    status,
    steer,
    tools,
    traces,
    ui,
)
from infra.cli.common import ClosedPipe, Interrupted, app, err

__all__ = ["app", "main"]

# Importing them registers their commands on ``app``.
_COMMAND_MODULES = (
    platform,
    goal,
    steer,
    env,
    data,
    dlq,
    status,
    memory,
    rerun,
    fork,
    tools,
    mcp,
    traces,
    metrics,
    a2a,
    agui,
    schedule,
    approvals,
    settings,
    ui,
)


# Exit codes: 0 done, 1 a goal failed or something needs attention, 2 an error (the message
# says what to do), 3 --wait gave up while the goal runs on, 130 Ctrl-C, 141 a closed pipe.
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141


def main() -> None:
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
