"""What a command runs with, typer or not: its settings, its connection, its event loop.

Apart from the typer app (infra/cli/common.py), so that the fast `agora query`
(infra/cli/fast_query.py) starts without the command-line framework."""

from __future__ import annotations

import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from infra.cli.exits import ClosedPipe, Interrupted

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

    from infra.bus.wire import WireClient
    from infra.client_settings import ConnectionSettings
    from infra.settings import Settings

__all__ = [
    "GIVE_UP_CONNECTING_S",
    "connect",
    "connect_wire",
    "load_client_settings",
    "load_settings",
    "run",
]

# How long a command waits for an unreachable server before it says so (services wait on).
GIVE_UP_CONNECTING_S = 5.0


def load_settings() -> Settings:
    from infra.logging import configure_logging
    from infra.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format, defer=True)
    return settings


def load_client_settings() -> ConnectionSettings:
    """What a command that only connects and asks reads: the few variables it uses, without
    the settings model where their values are plain, else the whole model, which checks
    every variable (infra/client_settings.py)."""
    import os

    from infra.client_settings import read_client_settings
    from infra.logging import configure_logging

    settings = read_client_settings(os.environ)
    if settings is None:
        return load_settings()
    configure_logging(settings.log_level, settings.log_format, defer=True)
    return settings


async def connect(
    settings: ConnectionSettings, name: str, *, identity: str | None = None
) -> NatsClient:
    """A command's connection: as the client unless told otherwise, giving up when the
    server cannot be reached."""
    from infra.bus import connection
    from infra.platform.credentials import CLIENT

    return await connection.connect(
        settings, name, identity=identity or CLIENT, give_up_after_s=GIVE_UP_CONNECTING_S
    )


async def connect_wire(settings: ConnectionSettings, name: str) -> WireClient | None:
    """The lean wire client as the client, for a command's plain request/reply; None when it
    cannot serve (TLS, AGORA_WIRE_CLIENT=off, no server accepting it): the command then
    connects with :func:`connect`, whose errors say what is wrong."""
    from infra.bus import connection
    from infra.bus.wire import WireRefusedError

    if not settings.wire_client:
        return None
    try:
        return await connection.connect_wire(settings, name)
    except (WireRefusedError, OSError, TimeoutError):
        return None


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
