"""``agora ui``: the live web dashboard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra.cli.common import app, connect, endpoint_token, err, load_settings, run

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = ["DEFAULT_PORT", "ui"]

DEFAULT_PORT = 8768  # beside agora a2a (8766) and agora agui (8767)


@app.command("ui")
def ui(
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="port to bind (0: any free port)")] = DEFAULT_PORT,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            envvar="AGORA_UI_TOKEN_FILE",
            help="file holding the token that signs in (or AGORA_UI_TOKEN)",
        ),
    ] = None,
) -> None:
    """Serve the live web dashboard: goals, a goal's timeline, plan, facts and memory
    context, analytics, dead letters. Open on loopback unless a token is set; on any other
    address a token is required. It reads through agora.query and the event stream."""
    from infra.dashboard.auth import UI_TOKEN
    from infra.platform.bearer import is_loopback

    settings = load_settings()
    token: str | None = None
    source = "none: open to this machine"
    if os.environ.get(UI_TOKEN.env_var) or token_file is not None or not is_loopback(host):
        resolved = endpoint_token(
            UI_TOKEN,
            token_file=token_file,
            host=host,
            generated_path=settings.data_dir / "ui" / "token",
        )
        token, source = resolved.value, f"from {resolved.source}"
    run(_serve(settings, host=host, port=port, token=token, source=source))


async def _serve(
    settings: Settings, *, host: str, port: int, token: str | None, source: str
) -> None:
    from infra.clients.goals import AgoraClient
    from infra.dashboard.app import Dashboard, build_app
    from infra.dashboard.auth import Access
    from infra.dashboard.live import GoalsHub
    from infra.dashboard.server import serve_dashboard
    from infra.logging import redact_stdlib_loggers
    from infra.platform.auth import ADMIN

    nc = await connect(settings, "agora-ui")
    hub = GoalsHub(nc)
    await hub.start()
    dashboard = Dashboard(
        client=AgoraClient(nc),
        hub=hub,
        operator=lambda: connect(settings, "agora-ui-operator", identity=ADMIN),
    )
    redact_stdlib_loggers("uvicorn", "starlette")

    def ready(url: str) -> None:
        err.print(f"agora ui: the dashboard at {url} (token {source})")

    try:
        await serve_dashboard(
            build_app(dashboard, Access(token)),
            host=host,
            port=port,
            data_dir=settings.data_dir,
            on_ready=ready,
        )
    finally:
        await dashboard.close()
        await nc.close()
