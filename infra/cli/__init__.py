"""The ``agora`` command line. Each command only translates arguments and prints results."""

from __future__ import annotations

import sys

from events.errors import AgoraError
from infra.cli import data, fork, platform, redrive
from infra.cli.common import app, err

__all__ = ["app", "main"]

_COMMAND_MODULES = (
    platform,
    data,
    redrive,
    fork,
)  # importing them registers their commands on ``app``


def main() -> None:
    try:
        app()
    except AgoraError as exc:
        err.print(f"[red]agora: {exc}[/]")
        sys.exit(2)
