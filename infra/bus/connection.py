"""The connection to NATS every agora process opens: servers from settings, identity, errors."""

from __future__ import annotations

import time

from nats.aio.client import Client as NatsClient

from events.errors import ConfigurationError
from infra.logging import get_logger
from infra.platform.credentials import CLIENT, connect_options
from infra.platform.embedded import running_server_url
from infra.settings import Settings

__all__ = ["connect", "resolve_urls"]

log = get_logger("agora.bus")


def resolve_urls(settings: Settings) -> list[str]:
    if settings.nats_urls:
        return list(settings.nats_urls)
    url = running_server_url(settings.nats_dir)
    if url is None:
        raise ConfigurationError(
            f"no agora NATS server is running for {settings.data_dir}: start one with "
            "`agora up` (or `agora demo`), or set AGORA_NATS_URL"
        )
    return [url]


async def connect(
    settings: Settings,
    name: str,
    *,
    identity: str = CLIENT,
    give_up_after_s: float | None = None,
) -> NatsClient:
    """A connection as ``identity`` (docs/security.md): a service's own, ``client`` or ``admin``.

    Refused credentials fail at once with a readable error (nats-py would retry forever).
    A service waits for its server as long as it takes; a command (``give_up_after_s``) says
    the server cannot be reached once that long has passed without a connection.
    """
    connected = False
    started = time.monotonic()

    async def on_error(exc: Exception) -> None:
        if (
            not connected
            and give_up_after_s is not None
            and isinstance(exc, OSError | TimeoutError)
            and time.monotonic() - started >= give_up_after_s
        ):
            raise ConfigurationError(
                f"cannot reach the NATS server at {', '.join(servers)} ({exc}): is `agora up` "
                "running? (AGORA_NATS_URL, AGORA_DATA_DIR and AGORA_NATS_PORT say where)"
            )
        log.warning("nats_error", error=str(exc), client=name)
        if not connected and "authorization violation" in str(exc).lower():
            raise ConfigurationError(
                f"the NATS server refused the credentials of {name!r} (identity {identity!r}): "
                "check AGORA_NATS_USER/AGORA_NATS_PASSWORD or AGORA_NATS_CREDS, or the files "
                f"under {settings.nats_dir / 'credentials'} (docs/security.md)"
            )

    async def on_disconnect() -> None:
        log.info("nats_disconnected", client=name)

    async def on_reconnect() -> None:
        log.warning("nats_reconnected", client=name)

    servers = resolve_urls(settings)
    nc = NatsClient()
    try:
        await nc.connect(
            servers=servers,
            name=name,
            max_reconnect_attempts=-1,  # a server restart is a pause, never the end of a service
            reconnect_time_wait=0.25,  # type: ignore[arg-type]  # seconds; nats-py says int
            connect_timeout=5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            **connect_options(settings, identity),
        )
    except ConfigurationError:
        await nc.close()
        raise
    connected = True
    return nc
