"""The bearer token of agora's A2A endpoint: ``AGORA_A2A_TOKEN``, or a file
(``AGORA_A2A_TOKEN_FILE``, ``--token-file``); on loopback without one, agora makes one in
``<data dir>/a2a/token``. The rules are every HTTP endpoint's (:mod:`infra.platform.bearer`)."""

from __future__ import annotations

from infra.platform.bearer import TokenSource

__all__ = ["A2A_TOKEN"]

A2A_TOKEN = TokenSource(
    endpoint="agora a2a",
    purpose="A2A",
    env_var="AGORA_A2A_TOKEN",
    file_option="--token-file (AGORA_A2A_TOKEN_FILE)",
)
