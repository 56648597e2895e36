"""The ``agora`` command line. Each command only translates arguments and prints results."""

from __future__ import annotations

import sys

from events.errors import AgoraError
from infra.cli import data, dlq, fork, memory, platform, redrive, status
from infra.cli.common import app, err

__all__ = ["app", "main"]

# Importing them registers their commands on ``app``.
_COMMAND_MODULES = (platform, data, dlq, status, memory, redrive, fork)


def main() -> None:
    try:
        app()
    except AgoraError as exc:
        err.print(f"[red]agora: {exc}[/]")
        sys.exit(2)
