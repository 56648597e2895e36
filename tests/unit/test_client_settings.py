"""The client settings read without the settings model mean what the model reads, and leave
everything else to it: a value it would refuse, any other variable of agora's."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from events.errors import ConfigurationError
from infra.client_settings import (
    OTEL_VARIABLES,
    READ_HERE,
    ClientSettings,
    read_client_settings,
)
from infra.environment import PREFIX, Environment, env_name
from infra.settings import Settings

VALUES = {
    "AGORA_NATS_URL": ["nats://a:4222", " nats://a:1, nats://b:2 ", ",", "", "   "],
    "AGORA_DATA_DIR": ["/tmp/agora-x", " relative/dir ", "~/agora", ""],
    "AGORA_NATS_USER": ["client", " bob ", ""],
    "AGORA_NATS_PASSWORD": ["s3cret", " pass word ", ""],
    "AGORA_NATS_CREDS": ["/tmp/c.json", "~/c.json"],
    "AGORA_WIRE_CLIENT": ["on", "OFF", "true", "False", "1", "0", "yes", "no", "maybe", "2"],
    "AGORA_QUERY_TIMEOUT_S": ["5", "0", "7.5", " 2 ", "-1", "1e2", "inf", "nan", "1_0", "x"],
    "AGORA_LOG_LEVEL": ["info", " DEBUG ", "Warning", "verbose"],
    "AGORA_LOG_FORMAT": ["console", "JSON", "xml"],
    "AGORA_NATS_PORT": ["0", "4222", "65535", "65536", "-1", "+1", "port"],
    "AGORA_DURABILITY": ["os", "FSYNC", "never"],
    "AGORA_UI": ["off", "On", "sometimes"],
    "AGORA_PULL_EXPIRES_S": ["0.5", "2", "0", "0.0", "-1"],
}
CASES = [{name: value} for name, values in VALUES.items() for value in values]
# What is left to the model: what it refuses, and what it reads in ways not repeated here.
LEFT_TO_THE_MODEL = {
    ("AGORA_WIRE_CLIENT", "maybe"),
    ("AGORA_WIRE_CLIENT", "2"),
    ("AGORA_QUERY_TIMEOUT_S", "-1"),
    ("AGORA_QUERY_TIMEOUT_S", "1e2"),
    ("AGORA_QUERY_TIMEOUT_S", "inf"),
    ("AGORA_QUERY_TIMEOUT_S", "nan"),
    ("AGORA_QUERY_TIMEOUT_S", "1_0"),
    ("AGORA_QUERY_TIMEOUT_S", "x"),
    ("AGORA_LOG_LEVEL", "verbose"),
    ("AGORA_LOG_FORMAT", "xml"),
    ("AGORA_NATS_PORT", "65536"),
    ("AGORA_NATS_PORT", "-1"),
    ("AGORA_NATS_PORT", "+1"),
    ("AGORA_NATS_PORT", "port"),
    ("AGORA_DURABILITY", "never"),
    ("AGORA_UI", "sometimes"),
    ("AGORA_PULL_EXPIRES_S", "0"),
    ("AGORA_PULL_EXPIRES_S", "0.0"),
    ("AGORA_PULL_EXPIRES_S", "-1"),
}


def _model_reads(environ: dict[str, str]) -> Settings | ConfigurationError:
    try:
        return Settings.from_env(environ)
    except ConfigurationError as exc:
        return exc


@pytest.mark.parametrize("environ", CASES, ids=lambda e: "=".join(next(iter(e.items()))))
def test_a_value_read_here_is_what_the_model_reads_and_a_refused_one_is_left_to_it(
    environ: dict[str, str],
) -> None:
    read = read_client_settings(environ)
    model = _model_reads(environ)
    [variable] = environ.items()
    assert (read is None) == (variable in LEFT_TO_THE_MODEL)
    if read is None:
        return  # the command reads the model, which says what it says
    assert isinstance(model, Settings), f"read here, refused by the model: {model}"
    for field in fields(ClientSettings):
        assert getattr(read, field.name) == getattr(model, field.name), field.name
    assert read.nats_dir == model.nats_dir


def test_plain_values_are_read_here() -> None:
    """The environment `agora env` and the docs' examples give is the fast one."""
    environ = {
        "AGORA_NATS_URL": "nats://127.0.0.1:4222",
        "AGORA_NATS_USER": "client",
        "AGORA_NATS_PASSWORD": "pw",
        "AGORA_NATS_PORT": "0",
        "AGORA_LOG_LEVEL": "info",
        "HOME": "/root",
    }
    read = read_client_settings(environ)
    assert read is not None
    assert (read.nats_urls, read.nats_user, read.log_level) == (
        ("nats://127.0.0.1:4222",),
        "client",
        "info",
    )
    assert read_client_settings({"PATH": "/usr/bin"}) == ClientSettings(
        data_dir=Settings.from_env({}).data_dir
    )


@pytest.mark.parametrize(
    "environ",
    [
        {"AGORA_CONCURRENCY": "not a number"},
        {"AGORA_TLS_CERT": "/tmp/cert.pem"},
        {"AGORA_LLM_BASE_URL": "http://127.0.0.1:1"},
        {"agora_nats_url": "nats://a:1"},
        {"AGORA_SOMETHING_NOT_DECLARED": "x"},
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
        {"traceparent": "00-bad"},
    ],
)
def test_any_other_variable_of_agora_is_left_to_the_model(environ: dict[str, str]) -> None:
    assert read_client_settings(environ) is None


def test_the_variables_read_here_are_declared_and_the_model_reads_no_others_outside_agora_s() -> (
    None
):
    declared = {env_name(field) for field in Environment.model_fields}
    assert declared >= READ_HERE
    assert {name for name in declared if not name.startswith(PREFIX)} == OTEL_VARIABLES


def test_the_defaults_are_the_declared_ones() -> None:
    model = Settings.from_env({})
    defaults = ClientSettings()
    for field in fields(ClientSettings):
        if field.name != "data_dir":  # found upwards from the working directory by both
            assert getattr(defaults, field.name) == getattr(model, field.name), field.name
    assert defaults.data_dir == Path(".agora")
