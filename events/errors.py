"""The root of the one error hierarchy (docs/errors.md lists every class in it). Every message
says what went wrong and what to do about it."""

from __future__ import annotations

__all__ = [
    "AgoraError",
    "ConcurrentWriteError",
    "ConfigurationError",
    "DecodeError",
    "EventTooLargeError",
    "GoalExistsError",
    "LeaseLostError",
    "LlmError",
    "LlmNotRecordedError",
    "LlmResponseError",
    "LlmUnavailableError",
    "ToolError",
]


class AgoraError(Exception):
    """Root of every error agora raises on purpose."""


class ConfigurationError(AgoraError):
    """A setting, stream or consumer is not as agora needs it."""


class DecodeError(AgoraError):
    """Bytes on the bus are not a valid event or command."""


class ToolError(AgoraError):
    """A tool could not do its job. ``transient`` errors are worth retrying."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class LlmError(AgoraError):
    """A language model could not give a usable answer."""


class LlmUnavailableError(LlmError):
    """Every provider of the chain failed (timeouts, 429/5xx after retries, open breakers)."""


class LlmResponseError(LlmError):
    """A provider answered, but not with something agora can use (malformed JSON, bad shape)."""


class LlmNotRecordedError(LlmError):
    """A re-run (`agora rerun`) asked a question the recorded goal never asked, and live calls
    are off."""


class ConcurrentWriteError(AgoraError):
    """A guarded append was refused: the goal has events newer than the writer had read."""


class EventTooLargeError(AgoraError):
    """An event is over the event stream's message size limit: it can never be written.

    Large outputs are stored beside the log (events/outputs.py), so this is what is left:
    arguments that join many outputs, a result that does not fit. The service that tried
    ends the goal (or the task) with this message as the reason instead of retrying.
    """

    def __init__(self, event_type: str, size: int | None, limit: int) -> None:
        measured = "" if size is None else f" of {size:,} bytes"
        super().__init__(
            f"{event_type}{measured} is too large to record: the event stream takes "
            f"at most {limit:,} bytes per event; large outputs are stored apart, but this "
            "event itself does not fit"
        )
        self.event_type = event_type
        self.size = size
        self.limit = limit


class GoalExistsError(ConcurrentWriteError):
    """A goal's first event was refused: the goal id already has events (a resent command)."""


class LeaseLostError(AgoraError):
    """This replica is no longer the active writer of its service: another one took over.

    Its write was refused by the lease fence, nothing of it was stored, and the input goes
    back to the consumer (the active replica handles it).
    """
