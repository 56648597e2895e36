"""LLM settings, prices, Retry-After parsing and secret redaction: the pure parts of infra/llm."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import structlog

from events.errors import ConfigurationError
from infra.llm.chain import RetryPolicy
from infra.llm.pricing import PriceTable
from infra.llm.transport import redact, retry_after_seconds
from infra.logging import register_secret, scrub_secrets
from infra.settings import LlmEndpoint, Settings

KEY = "sk-live-0123456789abcdef"


def test_no_llm_settings_mean_no_endpoints() -> None:
    assert Settings.from_env({}).llm_endpoints == ()


def test_a_base_url_and_model_configure_the_primary() -> None:
    settings = Settings.from_env(
        {
            "AGORA_LLM_BASE_URL": "http://localhost:11434/v1/",
            "AGORA_LLM_MODEL": "llama3.2",
            "AGORA_LLM_API_KEY": KEY,
        }
    )
    assert settings.llm_endpoints == (
        LlmEndpoint(
            provider="openai", base_url="http://localhost:11434/v1", model="llama3.2", api_key=KEY
        ),
    )


def test_a_provider_alone_gets_its_public_base_url() -> None:
    (endpoint,) = Settings.from_env(
        {"AGORA_LLM_PROVIDER": "anthropic", "AGORA_LLM_MODEL": "claude-3-5-haiku-latest"}
    ).llm_endpoints
    assert endpoint.base_url == "https://api.anthropic.com"


def test_the_key_can_come_from_a_file_and_never_shows_in_repr(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    settings = Settings.from_env(
        {
            "AGORA_LLM_PROVIDER": "openai",
            "AGORA_LLM_MODEL": "gpt-4o-mini",
            "AGORA_LLM_API_KEY_FILE": str(key_file),
        }
    )
    assert settings.llm_endpoints[0].api_key == KEY
    assert KEY not in repr(settings)


def test_fallbacks_form_an_ordered_chain_with_keys_from_other_variables() -> None:
    fallbacks = [
        {"provider": "anthropic", "model": "claude-3-5-haiku-latest", "api_key_env": "ANT_KEY"},
        {"base_url": "http://localhost:11434/v1", "model": "llama3.2"},
    ]
    env = {
        "AGORA_LLM_BASE_URL": "https://api.openai.com/v1",
        "AGORA_LLM_MODEL": "gpt-4o-mini",
        "AGORA_LLM_FALLBACKS": json.dumps(fallbacks),
        "ANT_KEY": "sk-ant-secret-123",
    }
    settings = Settings.from_env(env)
    assert [e.name for e in settings.llm_endpoints] == [
        "openai:gpt-4o-mini",
        "anthropic:claude-3-5-haiku-latest",
        "openai:llama3.2",
    ]
    assert settings.llm_endpoints[1].api_key == "sk-ant-secret-123"
    again = Settings.from_env(settings.to_env())
    assert again.llm_endpoints == settings.llm_endpoints


def test_llm_tuning_round_trips_through_to_env(tmp_path: Path) -> None:
    original = Settings.from_env(
        {
            "AGORA_LLM_BASE_URL": "http://x/v1",
            "AGORA_LLM_MODEL": "m",
            "AGORA_LLM_TIMEOUT_S": "12.5",
            "AGORA_LLM_RETRIES": "4",
            "AGORA_LLM_CONCURRENCY": "3",
            "AGORA_LLM_STREAM": "true",
            "AGORA_LLM_PRICES": str(tmp_path / "prices.toml"),
        }
    )
    again = Settings.from_env(original.to_env())
    assert (again.llm_timeout_s, again.llm_retries, again.llm_concurrency) == (12.5, 4, 3)
    assert again.llm_stream is True
    assert again.llm_prices == tmp_path / "prices.toml"


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"AGORA_LLM_BASE_URL": "http://x/v1"}, "AGORA_LLM_MODEL"),
        ({"AGORA_LLM_PROVIDER": "gemini", "AGORA_LLM_MODEL": "m"}, "gemini"),
        ({"AGORA_LLM_BASE_URL": "ftp://x", "AGORA_LLM_MODEL": "m"}, "http"),
        ({"AGORA_LLM_FALLBACKS": "[]"}, "primary"),
        (
            {"AGORA_LLM_BASE_URL": "http://x", "AGORA_LLM_MODEL": "m", "AGORA_LLM_FALLBACKS": "{"},
            "JSON list",
        ),
        (
            {
                "AGORA_LLM_BASE_URL": "http://x",
                "AGORA_LLM_MODEL": "m",
                "AGORA_LLM_FALLBACKS": '[{"model": "m", "apikey": "x"}]',
            },
            "apikey",
        ),
        (
            {
                "AGORA_LLM_API_KEY_FILE": "/nonexistent/key",
                "AGORA_LLM_MODEL": "m",
                "AGORA_LLM_PROVIDER": "openai",
            },
            "AGORA_LLM_API_KEY_FILE",
        ),
        ({"AGORA_LLM_STREAM": "maybe"}, "AGORA_LLM_STREAM"),
        ({"AGORA_LLM_CONCURRENCY": "0"}, "AGORA_LLM_CONCURRENCY"),
    ],
)
def test_bad_llm_settings_are_refused_with_a_name(env: dict[str, str], mentions: str) -> None:
    with pytest.raises(ConfigurationError, match=mentions):
        Settings.from_env(env)


def test_dated_model_names_find_their_family_price() -> None:
    prices = PriceTable.load()
    assert prices.cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert prices.cost("gpt-4o-2024-08-06", 0, 1_000_000) == pytest.approx(10.0)


def test_a_user_price_file_adds_and_overrides(tmp_path: Path) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text(
        '[models."gpt-4o-mini"]\ninput = 1.0\noutput = 2.0\n'
        "[models.llama3]\ninput = 0.01\noutput = 0.02\n"
    )
    prices = PriceTable.load(toml)
    assert prices.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert prices.cost("llama3:8b", 1_000_000, 0) == pytest.approx(0.01)
    assert prices.cost("gpt-4o", 1_000_000, 0) == pytest.approx(2.5)  # built-in kept


def test_a_bad_price_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps({"models": {"x": {"input": "cheap"}}}))
    with pytest.raises(ConfigurationError, match="'x'"):
        PriceTable.load(bad)


def test_an_unknown_model_costs_nothing_and_warns_once() -> None:
    prices = PriceTable.load()
    with structlog.testing.capture_logs() as logs:
        assert prices.cost("my-local-model", 5_000, 5_000) == 0.0
        assert prices.cost("my-local-model", 5_000, 5_000) == 0.0
    assert [entry["event"] for entry in logs] == ["llm_price_unknown"]


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("0.5") == 0.5
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(later, now=now) == pytest.approx(30.0)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(earlier, now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_backoff_grows_with_jitter_and_retry_after_is_capped() -> None:
    import random

    policy = RetryPolicy(retries=3, backoff_s=1.0, retry_after_max_s=5.0)
    rng = random.Random(7)
    delays = [policy.delay(n, None, rng) for n in range(4)]
    for n, delay in enumerate(delays):
        assert min(2**n, 5.0) * 0.5 <= delay <= min(2**n, 5.0)
    assert policy.delay(0, 3600.0, rng) == 5.0
    assert policy.delay(0, 0.25, rng) == 0.25


def test_redact_removes_known_secrets_and_key_shaped_text() -> None:
    text = f"bad key {KEY}; try sk-proj-abc***wxyz or ask support"
    assert redact(text, [KEY]) == "bad key [redacted]; try [redacted] or ask support"


def test_registered_secrets_are_scrubbed_from_every_log_value() -> None:
    register_secret("hunter2-long-secret")
    event = {
        "event": "x",
        "error": "auth hunter2-long-secret failed",
        "nested": {"k": ["hunter2-long-secret"]},
    }
    scrubbed = scrub_secrets(None, "warning", event)
    assert "hunter2" not in json.dumps(scrubbed)
