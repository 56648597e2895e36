"""Large outputs, stored once beside the log and referred to by events. No I/O.

A task's output can be far larger than anything else an event holds, and the planner copies
outputs into later events (the evaluation request, the goal's result). Above a threshold an
output goes once into an object store bucket, named by its content hash, and events carry an
:class:`OutputRef` in its place; their ``output``/``result`` field then holds only the
reference's preview. :func:`externalize` takes an event apart into the small event and the
blobs to store; :func:`internalize` puts the values back. Naming by content makes storing
idempotent: a redelivered input stores the same blob under the same name, and produces a
byte-identical event that the stream drops as a duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from events.catalog import (
    EvaluationRequested,
    GoalAccepted,
    GoalCompleted,
    TaskCompleted,
    ToolReturned,
)
from events.model import Event, OutputRef, TaskOutcome

__all__ = [
    "CARRIES_OUTPUTS",
    "PREVIEW_CHARS",
    "Blob",
    "externalize",
    "internalize",
    "may_hold_refs",
    "refs_of",
    "stored_text",
]

PREVIEW_CHARS = 200
# The event types whose outputs may be stored apart (their writers may write the store).
CARRIES_OUTPUTS: tuple[type[Event], ...] = (
    TaskCompleted,
    ToolReturned,
    GoalCompleted,
    EvaluationRequested,
    GoalAccepted,
)
# What a stored event holds when some field of it is a reference (a cheap test on raw bytes:
# msgspec writes an absent reference as ``null``).
_REF_MARKER = b'_ref":{'


@dataclass(frozen=True, slots=True)
class Blob:
    """One value to store: ``data`` under ``name`` (its sha256, hex)."""

    name: str
    data: bytes


def stored_text(text: str, *, bucket: str, threshold: int) -> tuple[OutputRef, Blob] | None:
    """The reference and blob for ``text`` when it is over ``threshold`` bytes, else None."""
    data = text.encode()
    if len(data) <= threshold:
        return None
    digest = hashlib.sha256(data).hexdigest()
    ref = OutputRef(
        bucket=bucket, name=digest, size=len(data), sha256=digest, preview=text[:PREVIEW_CHARS]
    )
    return ref, Blob(digest, data)


def may_hold_refs(payload: bytes) -> bool:
    """Whether a stored event's bytes may carry a reference (never a false negative)."""
    return _REF_MARKER in payload


def refs_of(event: Event) -> tuple[OutputRef, ...]:
    """Every reference ``event`` carries, in field order."""
    match event:
        case TaskCompleted() | ToolReturned():
            return _present(event.output_ref)
        case GoalCompleted():
            return _present(event.result_ref)
        case EvaluationRequested():
            return (*_present(event.result_ref), *_outcome_refs(event.tasks))
        case GoalAccepted():
            return _outcome_refs(event.carried)
    return ()


def externalize(event: Event, *, bucket: str, threshold: int) -> tuple[Event, tuple[Blob, ...]]:
    """``event`` with every output over ``threshold`` bytes replaced by a reference, and the
    blobs to store first. An event with nothing that large comes back as it is."""
    blobs: list[Blob] = []

    def offload(text: str, ref: OutputRef | None) -> _Value | None:
        stored = None if ref is not None else stored_text(text, bucket=bucket, threshold=threshold)
        if stored is None:
            return None
        blobs.append(stored[1])
        return stored[0].preview, stored[0]

    return _map_outputs(event, offload), tuple(dict.fromkeys(blobs))


def internalize(event: Event, values: Mapping[str, str]) -> Event:
    """``event`` with each reference replaced by its value (``values``: name -> text), as
    if it had been written inline. A reference without a value is left in place."""

    def restore(_: str, ref: OutputRef | None) -> _Value | None:
        if ref is None or ref.name not in values:
            return None
        return values[ref.name], None

    return _map_outputs(event, restore)


# -- the fields that may hold a reference ------------------------------------------------

# An output field's (text, reference), and what maps it: the new pair, or None to keep it.
_Value = tuple[str, OutputRef | None]
_Map = Callable[[str, OutputRef | None], _Value | None]


def _present(ref: OutputRef | None) -> tuple[OutputRef, ...]:
    return () if ref is None else (ref,)


def _outcome_refs(outcomes: tuple[TaskOutcome, ...]) -> tuple[OutputRef, ...]:
    return tuple(o.output_ref for o in outcomes if o.output_ref is not None)


def _map_outputs(event: Event, change: _Map) -> Event:
    match event:
        case TaskCompleted() | ToolReturned():
            if done := change(event.output, event.output_ref):
                return msgspec.structs.replace(event, output=done[0], output_ref=done[1])
        case GoalCompleted():
            if done := change(event.result, event.result_ref):
                return msgspec.structs.replace(event, result=done[0], result_ref=done[1])
        case EvaluationRequested():
            tasks = _map_outcomes(event.tasks, change)
            if done := change(event.result, event.result_ref):
                return msgspec.structs.replace(
                    event, result=done[0], result_ref=done[1], tasks=tasks
                )
            if tasks is not event.tasks:
                return msgspec.structs.replace(event, tasks=tasks)
        case GoalAccepted():
            carried = _map_outcomes(event.carried, change)
            if carried is not event.carried:
                return msgspec.structs.replace(event, carried=carried)
    return event


def _map_outcomes(outcomes: tuple[TaskOutcome, ...], change: _Map) -> tuple[TaskOutcome, ...]:
    mapped = tuple(_map_outcome(outcome, change) for outcome in outcomes)
    changed = any(new is not old for new, old in zip(mapped, outcomes, strict=True))
    return mapped if changed else outcomes


def _map_outcome(outcome: TaskOutcome, change: _Map) -> TaskOutcome:
    if done := change(outcome.output, outcome.output_ref):
        return msgspec.structs.replace(outcome, output=done[0], output_ref=done[1])
    return outcome
