"""structlog set-up: JSON lines on stderr; goal_id, event_id, stream_seq bound at the edge.

structlog itself is imported when a line is first logged, not when a module asks for a logger:
importing it costs ~35 ms (its console renderer loads rich's traceback support), which a short
command such as ``agora query`` that logs nothing would pay at every start.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from structlog.typing import EventDict, FilteringBoundLogger, Processor

__all__ = [
    "apply_deferred_logging",
    "bind_lazy_fields",
    "configure_logging",
    "get_logger",
    "logging_configured",
    "redact_stdlib_loggers",
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


def _merge_lazy_fields(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
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


class _RedactingFilter(logging.Filter):
    """Registered secrets out of a standard-library log record (libraries agora drives, such
    as the MCP SDK and its HTTP client, log through ``logging``, not structlog)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = _scrub(record.getMessage())
            record.msg, record.args = message, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = str(_scrub(record.exc_text))
        return True


_REDACTING = _RedactingFilter()


def redact_stdlib_loggers(*names: str) -> None:
    """Scrub registered secrets from every record of the standard-library loggers ``names``
    and of their children that exist now (a logger's filters are not inherited, so call this
    again once a library has created more)."""
    existing = [n for n in logging.Logger.manager.loggerDict if isinstance(n, str)]
    for name in names:
        for logger_name in [name, *(n for n in existing if n.startswith(f"{name}."))]:
            logger = logging.getLogger(logger_name)
            if _REDACTING not in logger.filters:
                logger.addFilter(_REDACTING)


def scrub_secrets(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: registered secrets out of every value, tracebacks included."""
    if not _SECRETS:
        return event_dict
    return {key: _scrub(value) for key, value in event_dict.items()}


# A configuration waiting for structlog to be imported (configure_logging(defer=True)).
_deferred: tuple[str, str, bool] | None = None


def configure_logging(
    level: str = "warning", fmt: str = "json", *, cache: bool = True, defer: bool = False
) -> None:
    """``cache=False`` keeps loggers re-reading the configuration (tests that reset it).

    ``defer=True`` (the CLI's commands) configures structlog when the first line is logged
    through :func:`get_logger`, or at :func:`apply_deferred_logging`, unless it is loaded.
    """
    global _deferred  # noqa: PLW0603  # the process's one logging configuration
    if defer and "structlog" not in sys.modules:
        _deferred = (level, fmt, cache)
        return
    _deferred = None
    _configure(level, fmt, cache=cache)


def apply_deferred_logging() -> None:
    """Configure structlog now if a deferred configuration waits: before code that logs
    through structlog directly (the services' handlers) runs."""
    global _deferred  # noqa: PLW0603  # the process's one logging configuration
    if _deferred is not None:
        level, fmt, cache = _deferred
        _deferred = None
        _configure(level, fmt, cache=cache)


def logging_configured() -> bool:
    """Whether this process configured logging (or deferred it), so as not to override."""
    if _deferred is not None:
        return True
    if "structlog" not in sys.modules:
        return False
    import structlog

    return structlog.is_configured()


def _numeric(level: str) -> int:
    return logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)


def _configure(level: str, fmt: str, *, cache: bool) -> None:
    import structlog

    numeric = _numeric(level)
    renderer: Processor = (
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


# A logger's methods that log a line, and at which level.
_METHOD_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def _discard(*_args: object, **_kwargs: object) -> None:
    return None


class _LazyLogger:
    """structlog's logger for ``name``, looked up (importing structlog) on first use. While
    the configuration is deferred, a line below its level is dropped without importing it."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._logger is None:
            deferred = _deferred
            level = _METHOD_LEVELS.get(attribute)
            if deferred is not None and level is not None and level < _numeric(deferred[0]):
                return _discard
            apply_deferred_logging()
            import structlog

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, attribute)


def get_logger(name: str) -> FilteringBoundLogger:
    return cast("FilteringBoundLogger", _LazyLogger(name))
