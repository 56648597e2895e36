"""The bearer token of agora's AG-UI endpoint: ``AGORA_AGUI_TOKEN``, or a file
(``AGORA_AGUI_TOKEN_FILE``, ``--token-file``); on loopback without one, agora makes one in
``<data dir>/agui/token``. The rules are every HTTP endpoint's (:mod:`infra.platform.bearer`)."""

from __future__ import annotations

from infra.platform.bearer import TokenSource

__all__ = ["AGUI_TOKEN"]

AGUI_TOKEN = TokenSource(
    endpoint="agora agui",
    purpose="AG-UI",
    env_var="AGORA_AGUI_TOKEN",
    file_option="--token-file (AGORA_AGUI_TOKEN_FILE)",
)
