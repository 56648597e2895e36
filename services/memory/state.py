"""Memory's read model: long-term items and per-goal working memory, folded from the log. Pure.

``MemoryState.apply(seq, event)`` folds, in stream order, ``task_completed`` (each completed
task is an observation: ``decide.observation_of``), ``memory_stored`` (lessons; observations in
older logs, folded once with the task they observe), ``memory_forgotten``,
``memory_compacted`` and ``goal_completed``; ``applied_seq`` is the last stream sequence folded
in. A snapshot is this state serialized (msgpack) together with that sequence, so a restart
loads it and folds only the events after it.

The state also says which decisions the log calls for, so that any replica can take them and
none is lost in a crash: ``touched`` goals (new observations: is a compaction due?) and
``lessons_due`` (a goal completed after revisions, and its lessons are not in the log yet).
``lessons_due`` is part of the snapshot; it empties as the lessons arrive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from events.catalog import (
    GoalCompleted,
    MemoryCompacted,
    MemoryForgotten,
    MemoryStored,
    TaskCompleted,
)
from events.errors import AgoraError
from events.model import Event
from services.memory.decide import observation_of
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

MEMORY_EVENT_TYPES = (
    "task_completed",
    "goal_completed",
    "memory_stored",
    "memory_forgotten",
    "memory_compacted",
)
# 2: task_completed observations, lessons due, compaction sequences (format 1 snapshots are
# refused: memory replays the log instead).
SNAPSHOT_FORMAT = 2


class SnapshotError(AgoraError):
    """A snapshot could not be read; memory rebuilds from the log instead."""


class MemoryState:
    def __init__(self) -> None:
        self.long_term = LongTermMemory()
        self.working: dict[str, GoalWorkingMemory] = {}
        self.applied_seq = 0
        self._observation_goal: dict[str, str] = {}  # observation key -> its goal
        # Goals that completed after revisions -> their goal_completed's sequence, until their
        # lessons are in the log.
        self.lessons_due: dict[str, int] = {}
        # The stream sequence of each goal's last memory_compacted (the guard of the next one).
        self.compaction_seq: dict[str, int] = {}
        # Goals with new observations or compactions since the last ``take_touched``.
        self._touched: set[str] = set()

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.applied_seq:
            return
        self.applied_seq = seq
        match event:
            case TaskCompleted():
                self._stored(observation_of(event))
            case MemoryStored():
                self._stored(event)
            case MemoryForgotten():
                self._forgotten(event)
            case MemoryCompacted():
                self.working_memory(event.goal_id).compacted(event.through_ordinal, event.summary)
                self.compaction_seq[event.goal_id] = seq
                self._touched.add(event.goal_id)
            case GoalCompleted() if event.iterations > 1:
                self.lessons_due[event.goal_id] = seq

    def take_touched(self) -> set[str]:
        """The goals whose working memory changed since the last call (compaction may be due)."""
        touched, self._touched = self._touched, set()
        return touched

    def working_memory(self, goal_id: str) -> GoalWorkingMemory:
        return self.working.setdefault(goal_id, GoalWorkingMemory())

    def _stored(self, event: MemoryStored) -> None:
        ltm = self.long_term
        if event.kind == "lesson":
            self.lessons_due.pop(event.goal_id, None)
        if event.key in self._observation_goal or ltm.lookup(event.key) is not None:
            return  # already known: an older log's memory_stored of an indexed task, a resend
        digest = content_hash(event.text)
        if event.kind == "observation" and not ltm.is_forgotten(event, digest):
            self._observation_goal[event.key] = event.goal_id
            self.working_memory(event.goal_id).observe(event.key, event.text)
            self._touched.add(event.goal_id)
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
    lessons_due: dict[str, int]
    compaction_seq: dict[str, int]


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
            lessons_due=state.lessons_due,
            compaction_seq=state.compaction_seq,
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
    state.lessons_due = dict(snapshot.lessons_due)
    state.compaction_seq = dict(snapshot.compaction_seq)
    # After a restart every goal is worth a look: a compaction may have been cut short.
    state._touched = set(state.working)
    return state
