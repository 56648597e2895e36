"""``agora demo`` with ``AGORA_LLM_BASE_URL`` set: the same demo, planned and judged by the LLM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import _agora, _env, running_platform
from tests.integration.test_llm_goal import PLAN, plans, schema_name
from tests.llm_servers import ScriptedLlmServer

KEY = "sk-demo-secret-key-0123456789"
__all__ = ["running_platform"]  # the fixture, shared with test_cli


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


@pytest.mark.slow
def test_goal_takes_a_budget_and_refuses_a_bad_one(running_platform: dict[str, str]) -> None:
    result = _agora(
        "goal",
        "say hi",
        "--step",
        'echo:{"text": "hi"}',
        "--max-tokens",
        "100",
        "--max-cost-usd",
        "0.5",
        "--priority",
        "4",
        "--wait",
        "--json",
        env=running_platform,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    accepted = next(line for line in lines if line.get("type") == "goal_accepted")
    assert accepted["budget"] == {"max_tokens": 100, "max_cost_usd": 0.5}
    assert accepted["priority"] == 4
    assert lines[-1]["type"] == "goal_completed"

    refused = _agora("goal", "say hi", "--max-tokens", "0", "--wait", env=running_platform)
    assert refused.returncode == 1
    assert "max_tokens" in refused.stdout
