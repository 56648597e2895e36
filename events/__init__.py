"""The event catalogue: envelope, event types, intake commands, codec and subjects. No I/O."""

from events.catalog import *  # noqa: F403
from events.catalog import __all__ as _catalog_all
from events.codec import decode_event, encode
from events.errors import AgoraError, DecodeError, ToolError
from events.model import Check, Event, Expect, MemoryItem, Stamp, TaskOutcome, TaskSpec, event_type

__all__ = [
    *_catalog_all,
    "AgoraError",
    "Check",
    "DecodeError",
    "Event",
    "Expect",
    "MemoryItem",
    "Stamp",
    "TaskOutcome",
    "TaskSpec",
    "ToolError",
    "decode_event",
    "encode",
    "event_type",
]
