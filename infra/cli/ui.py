"""``agora ui``: the live web dashboard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra.cli.common import app, connect, endpoint_token, err, load_settings, run

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "dashboard_token", "ui"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8768  # beside agora a2a (8766) and agora agui (8767)
TOKEN_FILE_VAR = "AGORA_UI_TOKEN_FILE"  # noqa: S105  the variable's name, not a token


def dashboard_token(
    settings: Settings, *, host: str, token_file: Path | None
) -> tuple[str | None, str]:
    """The token the dashboard requires (None: open, on loopback with none set) and where it
    came from. Bound beyond loopback without one, ``ConfigurationError`` says how to set it."""
    from infra.dashboard.auth import UI_TOKEN
    from infra.platform.bearer import is_loopback

    if not os.environ.get(UI_TOKEN.env_var) and token_file is None and is_loopback(host):
        return None, "none: open to this machine"
    resolved = endpoint_token(
        UI_TOKEN,
        token_file=token_file,
        host=host,
        generated_path=settings.data_dir / "ui" / "token",
    )
    return resolved.value, f"from {resolved.source}"


@app.command("ui")
def ui(
    host: Annotated[
        str, typer.Option(envvar="AGORA_UI_HOST", help="address to bind (loopback by default)")
    ] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option(envvar="AGORA_UI_PORT", help="port to bind (0: any free port)")
    ] = DEFAULT_PORT,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            envvar=TOKEN_FILE_VAR,
            help="file holding the token that signs in (or AGORA_UI_TOKEN)",
        ),
    ] = None,
) -> None:
    """Serve the live web dashboard: goals, a goal's timeline, plan, facts and memory
    context, analytics, dead letters. Open on loopback unless a token is set; on any other
    address a token is required. It reads through agora.query and the event stream."""
    settings = load_settings()
    token, source = dashboard_token(settings, host=host, token_file=token_file)
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
