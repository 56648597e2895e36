"""``agora ui``: the live web dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra.cli.common import app, connect, endpoint_token, err, load_settings, run

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = ["dashboard_token", "ui"]


def dashboard_token(
    settings: Settings, *, host: str, token_file: Path | None
) -> tuple[str | None, str]:
    """The token the dashboard requires (None: open, on loopback with none set) and where it
    came from. Bound beyond loopback without one, ``ConfigurationError`` says how to set it.
    ``token_file`` (``--token-file``) wins over AGORA_UI_TOKEN_FILE."""
    from infra.dashboard.auth import UI_TOKEN
    from infra.platform.bearer import is_loopback

    given = settings.endpoints.ui_token
    token_file = token_file or settings.endpoints.ui_token_file
    if not given and token_file is None and is_loopback(host):
        return None, "none: open to this machine"
    resolved = endpoint_token(
        UI_TOKEN,
        token=given,
        token_file=token_file,
        host=host,
        generated_path=settings.data_dir / "ui" / "token",
    )
    return resolved.value, f"from {resolved.source}"


@app.command("ui")
def ui(
    host: Annotated[
        str | None,
        typer.Option(help="address to bind (default: AGORA_UI_HOST, else loopback)"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="port to bind, 0: any free port (default: AGORA_UI_PORT, else 8768)"),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="file holding the token that signs in (or AGORA_UI_TOKEN_FILE, AGORA_UI_TOKEN)",
        ),
    ] = None,
) -> None:
    """Serve the live web dashboard: goals, a goal's timeline, plan, facts and memory
    context, analytics, dead letters. Open on loopback unless a token is set; on any other
    address a token is required. It reads through agora.query and the event stream."""
    settings = load_settings()
    host = host or settings.endpoints.ui_host
    port = settings.endpoints.ui_port if port is None else port
    token, source = dashboard_token(settings, host=host, token_file=token_file)
    run(_serve(settings, host=host, port=port, token=token, source=source))


async def _serve(
    settings: Settings, *, host: str, port: int, token: str | None, source: str
) -> None:
    from infra.bus.connection import close_hot_path, open_hot_path
    from infra.clients.goals import AgoraClient
    from infra.dashboard.app import Dashboard, build_app
    from infra.dashboard.auth import Access
    from infra.dashboard.live import GoalsHub
    from infra.dashboard.server import serve_dashboard
    from infra.logging import redact_stdlib_loggers
    from infra.platform.auth import ADMIN

    nc = await connect(settings, "agora-ui")
    core = await open_hot_path(settings, nc, "agora-ui")
    hub = GoalsHub(nc, core)
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
        await close_hot_path(core)
        await nc.close()
