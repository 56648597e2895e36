"""Bytes <-> events. Encoder and decoders are built once, at import.

Old events stay readable forever: additive changes decode as they are (new fields have
defaults); a breaking change registers an upcaster for ``(type, schema_version)`` that turns the
old JSON object into the next version's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from events.catalog import AnyEvent
from events.errors import DecodeError
from events.model import Event

__all__ = ["UPCASTERS", "decode_event", "encode", "to_builtins"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (type, schema_version) -> function producing the object at schema_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}

_encoder = msgspec.json.Encoder()
_event_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)
_raw_decoder = msgspec.json.Decoder(dict[str, Any])


def encode(value: object) -> bytes:
    return _encoder.encode(value)


def to_builtins(event: Event) -> dict[str, Any]:
    built = msgspec.to_builtins(event)
    assert isinstance(built, dict)
    return built


def decode_event(data: bytes) -> Event:
    try:
        return _event_decoder.decode(data)
    except msgspec.ValidationError as exc:
        upcast = _upcast(data)
        if upcast is None:
            raise DecodeError(f"not a valid agora event: {exc}") from exc
        return upcast
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(f"not a valid agora event: {exc}") from exc


def _upcast(data: bytes) -> Event | None:
    try:
        raw = _raw_decoder.decode(data)
    except msgspec.ValidationError:  # valid JSON, but no object: nothing to upcast
        return None
    kind, version = raw.get("type"), raw.get("schema_version", 1)
    changed = False
    while isinstance(kind, str) and isinstance(version, int) and (kind, version) in UPCASTERS:
        raw = UPCASTERS[(kind, version)](raw)
        version += 1
        raw["schema_version"] = version
        changed = True
    if not changed:
        return None
    try:
        return msgspec.convert(raw, AnyEvent)  # type: ignore[no-any-return]
    except msgspec.ValidationError:
        return None
