"""What every ``agora`` command shares: the app, consoles, settings, the event loop."""

from __future__ import annotations

import signal
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

from events.errors import AgoraError

if TYPE_CHECKING:
    import asyncio
    from pathlib import Path

    from nats.aio.client import Client as NatsClient

    from infra.platform.bearer import BearerToken, TokenSource
    from infra.settings import Settings

__all__ = [
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

# How long a command waits for an unreachable server before it says so (services wait on).
GIVE_UP_CONNECTING_S = 5.0

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


class ClosedPipe(Exception):  # noqa: N818  # the reader left (`| head`), not an error
    """stdout's reader went away; ``main`` exits 141 quietly, as a shell tool would."""


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich's default exits 1; a closed pipe is 141 for every agora command.
        self.quiet = True
        raise ClosedPipe


# emoji=False: a value such as ":smile:" in a query's rows is printed as it is, not as an
# emoji (and rich's emoji table, ~1.6 ms to import, stays unloaded).
out = _Console(emoji=False)
err = _Console(stderr=True, soft_wrap=True, emoji=False)  # one line each: grep-able, copyable


def load_settings() -> Settings:
    from infra.logging import configure_logging
    from infra.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format, defer=True)
    return settings


async def connect(settings: Settings, name: str, *, identity: str | None = None) -> NatsClient:
    """A command's connection: as the client unless told otherwise, giving up when the
    server cannot be reached."""
    from infra.bus import connection
    from infra.platform.credentials import CLIENT

    return await connection.connect(
        settings, name, identity=identity or CLIENT, give_up_after_s=GIVE_UP_CONNECTING_S
    )


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


class Interrupted(Exception):  # noqa: N818  # a user's Ctrl-C, not an error of agora's
    """Ctrl-C (or SIGTERM) stopped a command; ``main`` exits 130 without a traceback."""


def run(work: Coroutine[Any, Any, Any]) -> Any:
    """Run a command's coroutine; Ctrl-C cancels it (its ``finally`` blocks close what they
    opened) and raises :class:`Interrupted`. Commands that stop on a signal by themselves
    (``up``, ``service``, ``tail``) install their own handlers over these."""
    import asyncio

    async def interruptible() -> Any:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        interrupted = asyncio.Event()

        def interrupt() -> None:
            interrupted.set()
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, interrupt)
        try:
            return await work
        except asyncio.CancelledError:
            if interrupted.is_set():
                raise Interrupted from None
            raise
        except BrokenPipeError:
            raise ClosedPipe from None

    try:
        import uvloop

        return uvloop.run(interruptible())
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(interruptible())
    finally:
        # The loop may leave its own handlers installed: Ctrl-C after it (between the
        # refreshes of --watch) must still interrupt.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


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
