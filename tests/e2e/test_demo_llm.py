"""``agora demo`` with ``AGORA_LLM_BASE_URL`` set: the same demo, planned and judged by the LLM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import _env
from tests.integration.test_llm_goal import PLAN, plans, schema_name
from tests.llm_servers import ScriptedLlmServer

KEY = "sk-demo-secret-key-0123456789"


@pytest.mark.slow
def test_demo_uses_the_llm_when_a_base_url_is_set(
    tmp_path: Path, openai_server: ScriptedLlmServer
) -> None:
    openai_server.set_script(plans(PLAN))
    env = {
        **_env(tmp_path),
        "AGORA_LLM_BASE_URL": openai_server.base_url,
        "AGORA_LLM_MODEL": "scripted-gpt",
        "AGORA_LLM_API_KEY": KEY,
    }
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "LLM: openai:scripted-gpt" in result.stdout
    assert "every sample goal completed" in result.stdout
    asked = [schema_name(r) for r in openai_server.requests]
    assert "plan" in asked  # the free-text sample was planned by the model
    assert "judgement" in asked  # and the results judged by it
    assert "llm_responded" in result.stdout  # the trajectories show the recorded calls
    assert KEY not in result.stdout + result.stderr
