"""What every ``agora`` command shares: the app, consoles, settings, the event loop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any

import typer
from rich.console import Console

from infra.logging import configure_logging
from infra.settings import Settings

__all__ = ["app", "err", "load_settings", "out", "run", "stop_on_signals"]

app = typer.Typer(
    name="agora",
    help="Event-sourced multi-agent platform on NATS JetStream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def load_settings() -> Settings:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def run(work: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop

        return uvloop.run(work)
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(work)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
