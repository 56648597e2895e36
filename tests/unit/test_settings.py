"""Settings from the environment: defaults for a first-time user, clear errors, round trip."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from events.errors import ConfigurationError
from infra.settings import Settings, find_data_dir


def test_defaults_need_no_configuration() -> None:
    settings = Settings.from_env({})
    assert settings.embedded
    assert settings.data_dir == Path(".agora")
    assert settings.durability == "fsync"
    assert settings.nats_port == 4222


def test_several_urls_mean_an_external_cluster() -> None:
    settings = Settings.from_env({"AGORA_NATS_URL": "nats://a:4222, nats://b:4222"})
    assert settings.nats_urls == ("nats://a:4222", "nats://b:4222")
    assert not settings.embedded


@pytest.mark.parametrize(
    ("name", "value", "mentions"),
    [
        ("AGORA_DURABILITY", "sometimes", "fsync"),
        ("AGORA_ACK_WAIT_S", "soon", "AGORA_ACK_WAIT_S"),
        ("AGORA_MAX_DELIVER", "0", "AGORA_MAX_DELIVER"),
        ("AGORA_NATS_PORT", "70000", "AGORA_NATS_PORT"),
        ("AGORA_MAX_INTAKE_BYTES", str(10 * 1024 * 1024), "AGORA_MAX_INTAKE_BYTES"),
        ("AGORA_NATS_AUTH", "maybe", "AGORA_NATS_AUTH='maybe'"),
        ("AGORA_LOG_FORMAT", "xml", "AGORA_LOG_FORMAT='xml': .*'json' or 'console'"),
        ("AGORA_TLS_CERT", "/c.pem", "AGORA_TLS_KEY go together"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"),
    ],
)
def test_a_bad_value_is_refused_with_its_name(name: str, value: str, mentions: str) -> None:
    with pytest.raises(ConfigurationError, match=mentions):
        Settings.from_env({name: value})


def test_to_env_round_trips_every_setting_a_child_process_needs() -> None:
    original = Settings.from_env(
        {
            "AGORA_NATS_URL": "nats://x:1,nats://y:2",
            "AGORA_DATA_DIR": "/tmp/agora-x",
            "AGORA_DURABILITY": "os",
            "AGORA_ACK_WAIT_S": "7.5",
            "AGORA_EXECUTOR_CONCURRENCY": "9",
        }
    )
    again = Settings.from_env(original.to_env())
    assert again.nats_urls == original.nats_urls
    assert again.data_dir == original.data_dir
    assert again.durability == "os"
    assert again.ack_wait_s == 7.5
    assert again.executor_concurrency == 9


def test_the_data_dir_is_found_from_any_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".agora").mkdir()
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert Settings.from_env({}).data_dir == tmp_path / ".agora"
    assert Settings.from_env({}).workspace == tmp_path / ".agora" / "workspace"
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).data_dir == Path(".agora")  # here: relative, as before
    assert find_data_dir(tmp_path / "elsewhere") == tmp_path / ".agora"
    assert Settings.from_env({"AGORA_DATA_DIR": "/srv/a"}).data_dir == Path("/srv/a")


def test_a_variable_reaches_the_setting_of_its_name() -> None:
    settings = Settings.from_env(
        {
            "AGORA_PULL_EXPIRES_S": "0.5",
            "AGORA_UI_PORT": "0",
            "AGORA_NATS_SERVER_BIN": "~/bin/nats-server",
            "AGORA_FLOW_POLICY": '{"limits": []}',
            "AGORA_WIRE_CLIENT": "off",
        }
    )
    assert settings.pull_expires_s == 0.5
    assert settings.endpoints.ui_port == 0
    assert settings.nats_server_bin == Path("~/bin/nats-server").expanduser()
    assert settings.flow_policy == '{"limits": []}'
    assert not settings.wire_client
    assert Settings.from_env({"AGORA_DATA_DIR": ".agora"}) == Settings()  # the same defaults


def test_the_callers_trace_context_is_a_setting() -> None:
    context = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert Settings.from_env({"TRACEPARENT": context}).traceparent == context
    assert Settings.from_env({}).traceparent is None


def test_a_child_process_gets_every_setting_but_the_per_process_ones() -> None:
    settings = Settings.from_env(
        {
            "AGORA_NATS_URL": "nats://a:1",
            "AGORA_DATA_DIR": "/srv/agora",
            "AGORA_TLS_CERT": "/c.pem",
            "AGORA_TLS_KEY": "/k.pem",
            "AGORA_LLM_BASE_URL": "http://llm",
            "AGORA_LLM_MODEL": "m",
            "AGORA_LLM_API_KEY": "sk-secret-1",
            "AGORA_LLM_STREAM": "true",
            "AGORA_NATS_MEMORY_LIMIT": "",
            "AGORA_WIRE_CLIENT": "off",
            "AGORA_HTTP_ALLOW": "10.0.0.0/8,intranet",
            "AGORA_FLOW_POLICY": '{"limits": []}',
            "AGORA_NATS_USER": "ops",
            "AGORA_NATS_PASSWORD": "pw",
        }
    )
    env = settings.to_env()
    assert "AGORA_NATS_USER" not in env
    assert "AGORA_NATS_PASSWORD" not in env
    assert Settings.from_env(env) == replace(settings, nats_user=None, nats_password=None)
