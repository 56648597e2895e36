"""What a command that only connects and asks needs of the settings, read without pydantic.

The settings model (infra/environment.py, pydantic-settings) cost `agora query` ~38 ms of its
start to import and build. :func:`read_client_settings` reads the few variables such a command
uses, where the value is one whose meaning is plain (the same value the model would give,
which a unit test holds it to), and declines, answering None, whenever the environment sets
anything else of agora's: then the command reads the whole model (``Settings.from_env``), which
checks every variable and names any bad one, as it always did.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol, cast

__all__ = [
    "DATA_DIR_NAME",
    "OTEL_VARIABLES",
    "ClientSettings",
    "ConnectionSettings",
    "comma_list",
    "find_data_dir",
    "read_client_settings",
]

DATA_DIR_NAME = ".agora"
PREFIX = "AGORA_"
# The variables outside agora's prefix that the settings model reads (its OpenTelemetry
# aliases); a unit test keeps this equal to the model's.
OTEL_VARIABLES: Final = frozenset(
    {
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "TRACEPARENT",
        "OTEL_METRIC_EXPORT_INTERVAL",
    }
)


def find_data_dir(start: Path) -> Path:
    """The nearest ``.agora`` directory in ``start`` or above it (so the CLI finds the running
    platform from any subdirectory of where ``agora up`` runs); ``./.agora`` when none is."""
    for directory in (start, *start.parents):
        candidate = directory / DATA_DIR_NAME
        if candidate.is_dir():
            return candidate if directory != start else Path(DATA_DIR_NAME)
    return Path(DATA_DIR_NAME)


def comma_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


class ConnectionSettings(Protocol):
    """What connecting as a client reads: :class:`ClientSettings`, or the whole
    ``infra.settings.Settings``."""

    @property
    def nats_urls(self) -> tuple[str, ...] | None: ...
    @property
    def data_dir(self) -> Path: ...
    @property
    def nats_dir(self) -> Path: ...
    @property
    def nats_user(self) -> str | None: ...
    @property
    def nats_password(self) -> str | None: ...
    @property
    def nats_creds(self) -> Path | None: ...
    @property
    def tls_cert(self) -> Path | None: ...
    @property
    def tls_ca(self) -> Path | None: ...
    @property
    def wire_client(self) -> bool: ...
    @property
    def query_timeout_s(self) -> float: ...
    @property
    def log_level(self) -> str: ...
    @property
    def log_format(self) -> Literal["json", "console"]: ...


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """The settings of :class:`ConnectionSettings`; the defaults are the declared ones (a unit
    test holds them equal to infra/environment.py's)."""

    nats_urls: tuple[str, ...] | None = None
    data_dir: Path = Path(DATA_DIR_NAME)
    nats_user: str | None = None
    nats_password: str | None = None
    nats_creds: Path | None = None
    tls_cert: Path | None = None  # TLS is left to the whole model: these stay None here
    tls_ca: Path | None = None
    wire_client: bool = True
    query_timeout_s: float = 5.0
    log_level: str = "warning"
    log_format: Literal["json", "console"] = "json"

    @property
    def nats_dir(self) -> Path:
        return self.data_dir / "nats"


class _NotPlainError(Exception):
    """A value whose meaning is not plain here: the whole model reads the environment."""


def _text(value: str) -> str:
    return value


def _path(value: str) -> Path:
    return Path(value).expanduser()


def _seconds(value: str) -> float:
    if not _DECIMAL.fullmatch(value):
        raise _NotPlainError
    return float(value)


def _positive_seconds(value: str) -> float:
    seconds = _seconds(value)
    if seconds <= 0:
        raise _NotPlainError
    return seconds


def _port(value: str) -> int:
    if not _DIGITS.fullmatch(value) or int(value) > 65535:
        raise _NotPlainError
    return int(value)


def _switch(value: str) -> bool:
    words = {"on": True, "true": True, "yes": True, "1": True}
    words |= {"off": False, "false": False, "no": False, "0": False}
    if value.lower() not in words:
        raise _NotPlainError
    return words[value.lower()]


def _word(*choices: str) -> Callable[[str], str]:
    def read(value: str) -> str:
        word = value.lower()
        if word not in choices:
            raise _NotPlainError
        return word

    return read


_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")

# Each variable read here: the field it sets and how its (stripped, non-empty) value reads.
_READERS: Final[dict[str, tuple[str, Callable[[str], object]]]] = {
    "AGORA_NATS_URL": ("nats_urls", lambda value: comma_list(value) or None),
    "AGORA_DATA_DIR": ("data_dir", _path),
    "AGORA_NATS_USER": ("nats_user", _text),
    "AGORA_NATS_PASSWORD": ("nats_password", _text),
    "AGORA_NATS_CREDS": ("nats_creds", _path),
    "AGORA_WIRE_CLIENT": ("wire_client", _switch),
    "AGORA_QUERY_TIMEOUT_S": ("query_timeout_s", _seconds),
    "AGORA_LOG_LEVEL": ("log_level", _word("debug", "info", "warning", "error", "critical")),
    "AGORA_LOG_FORMAT": ("log_format", _word("json", "console")),
}
# Variables a client does not use but which a shell running `agora up` often sets: checked
# (a value the model would refuse declines), then left alone.
_CHECKED: Final[dict[str, Callable[[str], object]]] = {
    "AGORA_NATS_PORT": _port,
    "AGORA_DURABILITY": _word("fsync", "os"),
    "AGORA_UI": _switch,
    "AGORA_PULL_EXPIRES_S": _positive_seconds,
}
READ_HERE: Final = frozenset(_READERS) | frozenset(_CHECKED)


def read_client_settings(environ: Mapping[str, str]) -> ClientSettings | None:
    """The client settings of ``environ``, or None when the whole model must read it."""
    values: dict[str, object] = {}
    for name, raw in environ.items():
        if name not in READ_HERE:
            if name.upper().startswith(PREFIX) or name.upper() in OTEL_VARIABLES:
                return None
            continue
        value = raw.strip()
        if not value:  # an empty variable means its default, as the model reads it
            continue
        try:
            if name in _CHECKED:
                _CHECKED[name](value)
            else:
                field, read = _READERS[name]
                values[field] = read(value)
        except _NotPlainError:
            return None
    data_dir = cast(Path | None, values.pop("data_dir", None))
    if data_dir is None:
        data_dir = find_data_dir(Path.cwd()).expanduser()
    # Each value has its field's type: _READERS reads it so (a unit test checks every one).
    return ClientSettings(data_dir=data_dir, **values)  # type: ignore[arg-type]
