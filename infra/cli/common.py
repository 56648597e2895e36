"""What every typer command shares: the app, and (re-exported) the consoles, endings,
settings, connections and event loop of infra/cli/console.py, exits.py and runtime.py."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

import typer

from events.errors import AgoraError
from infra.cli.console import err, out
from infra.cli.exits import ClosedPipe, Interrupted
from infra.cli.runtime import GIVE_UP_CONNECTING_S, connect, load_settings, run

if TYPE_CHECKING:
    import asyncio
    from pathlib import Path

    from nats.aio.client import Client as NatsClient

    from infra.platform.bearer import BearerToken, TokenSource

__all__ = [
    "GIVE_UP_CONNECTING_S",
    "ClosedPipe",
    "Interrupted",
    "app",
    "connect",
    "endpoint_token",
    "err",
    "load_settings",
    "out",
    "run",
    "stop_on_signals",
]

app = typer.Typer(
    name="agora",
    help="Event-sourced multi-agent platform on NATS JetStream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help and usage errors: typer's rich help imports rich.markdown and markdown_it,
    # ~45 ms of every `agora --help` (docs/operations.md has the start-up budget).
    rich_markup_mode=None,
)


@app.callback()
def _agora() -> None:
    # A group even when one command is registered (load_commands registers only the one a
    # command line names): typer would otherwise run that command as the program itself.
    pass


def endpoint_token(
    spec: TokenSource,
    *,
    token: str | None,
    token_file: Path | None,
    host: str,
    generated_path: Path,
) -> BearerToken:
    """The bearer token an HTTP endpoint requires (``token``, from its setting; its file; or
    one made on loopback), kept out of every log; a token file others may read is warned
    about."""
    from infra.logging import register_secret
    from infra.platform.bearer import resolve_token

    resolved = resolve_token(
        spec, token=token, token_file=token_file, host=host, generated_path=generated_path
    )
    register_secret(resolved.value)
    if token_file is not None and not token:
        from infra.platform.auth import warn_if_loose

        warn_if_loose(token_file, f"{spec.purpose} bearer token (--token-file)")
    return resolved


def watch(refresh: Callable[[], object], interval_s: float) -> NoReturn:
    """``refresh`` the screen every ``interval_s`` until Ctrl-C, which ends it (exit 0)."""
    import time

    try:
        while True:
            if out.is_terminal:
                out.clear()
            try:
                refresh()
            except AgoraError as exc:  # a service restarting: say so, and refresh on
                err.print(f"[red]agora: {exc}[/]")
            now = time.strftime("%H:%M:%S")
            out.print(f"[dim]refreshed {now}, every {interval_s:g}s; Ctrl-C stops[/]")
            time.sleep(interval_s)  # the refresh rate a person reads at, not a wait on a condition
    except (KeyboardInterrupt, Interrupted):
        raise typer.Exit(0) from None


def stop_on_signals(stop: asyncio.Event) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def follow_start(nc: NatsClient, since: int | None) -> int:
    """The stream sequence a follower starts at: ``since``, else the event stream's next one
    (only new events)."""
    if since is not None:
        return since
    from events.subjects import EVENTS_STREAM
    from infra.bus.reader import stream_last_seq

    return await stream_last_seq(nc, EVENTS_STREAM) + 1
