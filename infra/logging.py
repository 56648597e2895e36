"""structlog set-up: JSON lines on stderr; goal_id, event_id, stream_seq bound at the edge."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging", "get_logger", "register_secret", "scrub_secrets"]

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
