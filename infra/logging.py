"""structlog set-up: JSON lines on stderr; goal_id, event_id, stream_seq bound at the edge."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token

import structlog

__all__ = [
    "bind_lazy_fields",
    "configure_logging",
    "get_logger",
    "register_secret",
    "scrub_secrets",
    "unbind_lazy_fields",
]

# The fields of the unit of work at hand (a delivery: its goal, event, sequence, consumer),
# computed only when a line is logged: binding them per message cost more than the message's
# own handling did on the hot path, and almost no message logs anything.
_LazyFields = Callable[[], Mapping[str, object]]
_lazy_fields: ContextVar[_LazyFields | None] = ContextVar("agora_log_fields", default=None)


def bind_lazy_fields(fields: _LazyFields) -> Token[_LazyFields | None]:
    """Every line logged in this context carries ``fields()`` (explicit keys win)."""
    return _lazy_fields.set(fields)


def unbind_lazy_fields(token: Token[_LazyFields | None]) -> None:
    _lazy_fields.reset(token)


def _merge_lazy_fields(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    fields = _lazy_fields.get()
    if fields is not None:
        for key, value in fields().items():
            event_dict.setdefault(key, value)
    return event_dict


# Values (API keys) that must never reach a log line, whoever tries to log them.
_SECRETS: set[str] = set()
_MIN_SECRET_CHARS = 6  # shorter values would scrub ordinary words


def register_secret(secret: str) -> None:
    """From now on, ``secret`` is replaced by ``[redacted]`` wherever it appears in a log."""
    if len(secret) >= _MIN_SECRET_CHARS:
        _SECRETS.add(secret)


def _scrub(value: object) -> object:
    if isinstance(value, str):
        for secret in _SECRETS:
            value = value.replace(secret, "[redacted]")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def scrub_secrets(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A structlog processor: registered secrets out of every value, tracebacks included."""
    if not _SECRETS:
        return event_dict
    return {key: _scrub(value) for key, value in event_dict.items()}


def configure_logging(level: str = "warning", fmt: str = "json", *, cache: bool = True) -> None:
    """``cache=False`` keeps loggers re-reading the configuration (tests that reset it)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _merge_lazy_fields,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrub_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=cache,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
