"""Memory's read model: long-term items and per-goal working memory, folded from the log. Pure.

``MemoryState.apply(seq, event)`` folds ``memory_stored``, ``memory_forgotten`` and
``memory_compacted`` in stream order; ``applied_seq`` is the last stream sequence folded in.
A snapshot is this state serialized (msgpack) together with that sequence, so a restart loads
it and folds only the events after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from events.catalog import MemoryCompacted, MemoryForgotten, MemoryStored
from events.errors import AgoraError
from events.model import Event
from services.memory.longterm import Item, LongTermMemory, content_hash
from services.memory.working import GoalWorkingMemory, Observation, estimate_tokens

__all__ = [
    "MEMORY_EVENT_TYPES",
    "SNAPSHOT_FORMAT",
    "MemoryState",
    "SnapshotError",
    "decode_snapshot",
    "encode_snapshot",
]

MEMORY_EVENT_TYPES = ("memory_stored", "memory_forgotten", "memory_compacted")
SNAPSHOT_FORMAT = 1


class SnapshotError(AgoraError):
    """A snapshot could not be read; memory rebuilds from the log instead."""


class MemoryState:
    def __init__(self) -> None:
        self.long_term = LongTermMemory()
        self.working: dict[str, GoalWorkingMemory] = {}
        self.applied_seq = 0
        self._observation_goal: dict[str, str] = {}  # observation key -> its goal

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.applied_seq:
            return
        self.applied_seq = seq
        match event:
            case MemoryStored():
                self._stored(event)
            case MemoryForgotten():
                self._forgotten(event)
            case MemoryCompacted():
                self.working_memory(event.goal_id).compacted(event.through_ordinal, event.summary)

    def working_memory(self, goal_id: str) -> GoalWorkingMemory:
        return self.working.setdefault(goal_id, GoalWorkingMemory())

    def _stored(self, event: MemoryStored) -> None:
        ltm = self.long_term
        digest = content_hash(event.text)
        if event.kind == "observation" and not ltm.is_forgotten(event, digest):
            self._observation_goal[event.key] = event.goal_id
            self.working_memory(event.goal_id).observe(event.key, event.text)
        ltm.store(event, digest)

    def _forgotten(self, event: MemoryForgotten) -> None:
        removed = self.long_term.forget(event)
        if not event.key:
            self.working.pop(event.goal_id, None)
            return
        for key in {event.key, *(k for item in removed for k in item.keys)}:
            goal = self._observation_goal.get(key)
            if goal is not None and goal in self.working:
                self.working[goal].forget(key)

    def stats(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for item in self.long_term.items.values():
            kinds[item.kind] = kinds.get(item.kind, 0) + 1
        ltm = self.long_term
        return {
            "items": len(ltm),
            "keys": sum(item.mentions for item in ltm.items.values()),
            "kinds": dict(sorted(kinds.items())),
            "forgotten_keys": len(ltm.forgotten_keys),
            "forgotten_goals": len(ltm.forgotten_goals),
            "goals_in_working_memory": len(self.working),
            "applied_seq": self.applied_seq,
        }


# -- snapshots -----------------------------------------------------------------------------


class _ItemRecord(msgspec.Struct, array_like=True):
    item_id: int
    content_hash: str
    key: str
    text: str
    kind: str
    goal_id: str
    source_event_id: str
    recorded_at: datetime
    last_stored_at: datetime
    importance: float
    metadata: dict[str, Any]
    keys: list[str]
    goals: list[str]


class _WorkingRecord(msgspec.Struct, array_like=True):
    goal_id: str
    summary: str
    compacted_through: int
    compactions: int
    next_ordinal: int
    keys: list[str]
    observations: list[tuple[int, str]]  # ordinal, key (the text is the long-term item's)


class _Snapshot(msgspec.Struct):
    format: int
    seq: int
    next_item_id: int
    items: list[_ItemRecord]
    forgotten_keys: list[str]
    forgotten_hashes: list[str]
    forgotten_goals: list[str]
    working: list[_WorkingRecord]
    observation_goals: dict[str, str]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Snapshot)


def encode_snapshot(state: MemoryState) -> bytes:
    ltm = state.long_term
    return _encoder.encode(
        _Snapshot(
            format=SNAPSHOT_FORMAT,
            seq=state.applied_seq,
            next_item_id=ltm.next_item_id,
            items=[
                _ItemRecord(
                    i.item_id,
                    i.content_hash,
                    i.key,
                    i.text,
                    i.kind,
                    i.goal_id,
                    i.source_event_id,
                    i.recorded_at,
                    i.last_stored_at,
                    i.importance,
                    i.metadata,
                    i.keys,
                    i.goals,
                )
                for i in ltm.items.values()
            ],
            forgotten_keys=sorted(ltm.forgotten_keys),
            forgotten_hashes=sorted(ltm.forgotten_hashes),
            forgotten_goals=sorted(ltm.forgotten_goals),
            working=[
                _WorkingRecord(
                    goal,
                    wm.summary,
                    wm.compacted_through,
                    wm.compactions,
                    wm.next_ordinal,
                    sorted(wm.keys),
                    [(o.ordinal, o.key) for o in wm.observations],
                )
                for goal, wm in state.working.items()
            ],
            observation_goals=state._observation_goal,
        )
    )


def decode_snapshot(data: bytes) -> MemoryState:
    """The state a snapshot holds; ``SnapshotError`` if it is damaged or of another format."""
    try:
        snapshot = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"the memory snapshot is unreadable: {exc}") from exc
    if snapshot.format != SNAPSHOT_FORMAT:
        raise SnapshotError(
            f"the memory snapshot has format {snapshot.format}, this memory reads {SNAPSHOT_FORMAT}"
        )
    state = MemoryState()
    state.applied_seq = snapshot.seq
    ltm = state.long_term
    ltm.restore(
        Item(
            item_id=r.item_id,
            content_hash=r.content_hash,
            key=r.key,
            text=r.text,
            kind=r.kind,
            goal_id=r.goal_id,
            source_event_id=r.source_event_id,
            recorded_at=r.recorded_at,
            last_stored_at=r.last_stored_at,
            importance=r.importance,
            metadata=r.metadata,
            keys=r.keys,
            goals=r.goals,
        )
        for r in snapshot.items
    )
    ltm.next_item_id = max(ltm.next_item_id, snapshot.next_item_id)
    ltm.forgotten_keys = set(snapshot.forgotten_keys)
    ltm.forgotten_hashes = set(snapshot.forgotten_hashes)
    ltm.forgotten_goals = set(snapshot.forgotten_goals)
    for record in snapshot.working:
        state.working[record.goal_id] = GoalWorkingMemory(
            observations=[
                Observation(ordinal, key, item.text, estimate_tokens(item.text))
                for ordinal, key in record.observations
                if (item := ltm.lookup(key)) is not None
            ],
            summary=record.summary,
            compacted_through=record.compacted_through,
            compactions=record.compactions,
            next_ordinal=record.next_ordinal,
            keys=set(record.keys),
        )
    state._observation_goal = dict(snapshot.observation_goals)
    return state
