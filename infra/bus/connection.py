"""The connections to NATS an agora process opens: servers from settings, identity, errors.

Every service opens a nats-py connection (provisioning, KV, object store, request/reply) and
its hot path (:func:`open_hot_path`): the lean wire client where it can, else the nats-py
connection again, with the reason logged. A command that only asks and is answered (`agora
query`) connects with the wire client alone (:func:`connect_wire`), and nats-py stays
unimported.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from events.errors import ConfigurationError
from infra.logging import get_logger
from infra.platform.credentials import CLIENT, connect_options
from infra.platform.embedded import running_server_url

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

    from infra.bus.core import CoreBus, NatsPyCore
    from infra.bus.wire import WireClient
    from infra.client_settings import ConnectionSettings
    from infra.settings import Settings

__all__ = ["close_hot_path", "connect", "connect_wire", "open_hot_path", "resolve_urls"]

log = get_logger("agora.bus")


def resolve_urls(settings: ConnectionSettings) -> list[str]:
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
    settings: ConnectionSettings,
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

    from nats.aio.client import Client as NatsClient

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


async def open_hot_path(
    settings: Settings, nc: NatsClient, name: str, *, identity: str = CLIENT
) -> CoreBus:
    """What the consume loops and the publisher run over: the wire client as ``identity``, or
    ``nc`` itself when the wire client is turned off or cannot connect (the reason logged).

    The wire client is imported here, not with this module: a nats-py command connection
    never uses it, and importing it cost ~4 ms of each such command's start."""
    from infra.bus.wire import WireRefusedError

    if not settings.wire_client:
        return _fall_back(nc, name, "AGORA_WIRE_CLIENT is off")
    try:
        return await connect_wire(settings, name, identity=identity)
    except WireRefusedError as refused:
        return _fall_back(nc, name, str(refused))
    except (OSError, TimeoutError) as exc:  # nats-py got through: it takes the hot path too
        return _fall_back(nc, name, f"the wire client could not connect: {exc}")


async def connect_wire(
    settings: ConnectionSettings, name: str, *, identity: str = CLIENT
) -> WireClient:
    """The wire client as ``identity``, connected. ``WireRefusedError`` when it cannot serve
    (TLS is configured, or the server wants what it does not do); ``OSError`` or
    ``TimeoutError`` when no server accepts it (each tried once)."""
    from infra.bus.wire import WireClient, WireRefusedError

    if settings.tls_ca is not None or settings.tls_cert is not None:
        raise WireRefusedError("TLS is configured")
    servers = resolve_urls(settings)  # what connect() checks first, with the same errors
    options = connect_options(settings, identity)
    client = WireClient(
        servers,
        name,
        user=options.get("user"),
        password=options.get("password"),
        inbox_prefix=str(options["inbox_prefix"]),
    )
    return await client.connect()


async def close_hot_path(core: CoreBus) -> None:
    """Send what the wire client still holds (the last acks), then close it; a nats-py hot
    path is closed with its connection."""
    from infra.bus.wire import WireClient

    if isinstance(core, WireClient):
        await core.close()


def _fall_back(nc: NatsClient, name: str, reason: str) -> NatsPyCore:
    from infra.bus.core import NatsPyCore

    log.info("hot_path_uses_nats_py", client=name, reason=reason)
    return NatsPyCore(nc)
