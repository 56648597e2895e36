"""``agora env``: the URL and client credentials a program needs, as shell exports or JSON."""

from __future__ import annotations

import json
import shlex
from typing import Annotated

import typer

from infra.cli.common import app, load_settings

__all__ = ["client_environment", "env"]


def client_environment() -> dict[str, str]:
    """``AGORA_NATS_URL``, ``AGORA_NATS_USER`` and ``AGORA_NATS_PASSWORD`` for the client
    identity of the running platform (the user and password are absent when auth is off)."""
    from infra.bus.connection import resolve_urls
    from infra.platform.credentials import CLIENT, client_credentials

    settings = load_settings()
    found = {"AGORA_NATS_URL": ",".join(resolve_urls(settings))}
    creds = client_credentials(settings, CLIENT)
    if creds is not None:
        found.update(AGORA_NATS_USER=creds.user, AGORA_NATS_PASSWORD=creds.password)
    return found


@app.command()
def env(
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON object")] = False,
) -> None:
    """Print what a client connects with: eval "$(agora env)" in a shell, then any program
    (any language) reads AGORA_NATS_URL, AGORA_NATS_USER and AGORA_NATS_PASSWORD."""
    found = client_environment()
    if as_json:
        print(json.dumps(found))
        return
    for name, value in found.items():
        print(f"export {name}={shlex.quote(value)}")
