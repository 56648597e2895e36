"""Long-term memory: facts, results and lessons from every goal, deduplicated, ranked. Pure.

Items are folded from ``memory_stored`` / ``memory_forgotten`` in stream order, so every
replica (and every rebuild) holds the same items. An item is identified by its normalized
text: storing the same text again, from any goal, adds the key to the existing item and makes
it more recent and more important instead of adding a copy. Provenance (goal, source event)
is the first recording's; every goal that taught the item is remembered for filters and
forgetting.

Ranking: relevance (BM25, or BM25 fused with dense similarity by reciprocal rank fusion)
times ``1 + IMPORTANCE_WEIGHT * importance + RECENCY_WEIGHT * recency``, where recency halves
every ``RECENCY_HALF_LIFE_DAYS`` since the item was last stored, measured at the asking
event's time (never the clock), so an answer replays identically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.catalog import MemoryForgotten, MemoryStored
from events.model import MemoryItem
from services.memory.bm25 import CANDIDATES_PER_TERM, Bm25Index

__all__ = [
    "IMPORTANCE_WEIGHT",
    "RECENCY_HALF_LIFE_DAYS",
    "RECENCY_WEIGHT",
    "REPEAT_BOOST",
    "RRF_K",
    "Item",
    "LongTermMemory",
    "SearchFilter",
    "content_hash",
    "normalize",
    "reciprocal_rank_fusion",
]

IMPORTANCE_WEIGHT = 0.5
RECENCY_WEIGHT = 0.25
RECENCY_HALF_LIFE_DAYS = 30.0
REPEAT_BOOST = 0.1  # importance gained each time the same text is stored again
RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion


def normalize(text: str) -> str:
    """Case and whitespace do not make a different memory."""
    return " ".join(text.casefold().split())


def content_hash(text: str) -> str:
    return hashlib.blake2b(normalize(text).encode(), digest_size=16).hexdigest()


@dataclass(slots=True)
class Item:
    item_id: int  # order of first recording: stable across replicas
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
    keys: list[str] = field(default_factory=list)
    goals: list[str] = field(default_factory=list)

    @property
    def mentions(self) -> int:
        return len(self.keys)


@dataclass(frozen=True, slots=True)
class SearchFilter:
    goal_id: str | None = None
    kinds: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    since: datetime | None = None  # recorded at or after
    until: datetime | None = None  # recorded before

    def admits(self, item: Item) -> bool:
        return (
            (self.goal_id is None or self.goal_id in item.goals)
            and (not self.kinds or item.kind in self.kinds)
            and all(item.metadata.get(k) == v for k, v in self.metadata.items())
            and (self.since is None or item.recorded_at >= self.since)
            and (self.until is None or item.recorded_at < self.until)
        )


def reciprocal_rank_fusion(*rankings: Sequence[int]) -> dict[int, float]:
    """``sum(1 / (RRF_K + rank))`` over the rankings a document appears in (rank from 1)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (RRF_K + rank)
    return fused


class LongTermMemory:
    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self._by_hash: dict[str, int] = {}
        self._by_key: dict[str, int] = {}
        self._lexical = Bm25Index()
        self.next_item_id = 0
        # Tombstones: what was forgotten never comes back, whatever is stored later.
        self.forgotten_keys: set[str] = set()
        self.forgotten_hashes: set[str] = set()
        self.forgotten_goals: set[str] = set()

    def __len__(self) -> int:
        return len(self.items)

    def lookup(self, key: str) -> Item | None:
        item_id = self._by_key.get(key)
        return None if item_id is None else self.items[item_id]

    def item_for_hash(self, digest: str) -> Item | None:
        item_id = self._by_hash.get(digest)
        return None if item_id is None else self.items[item_id]

    def is_forgotten(self, event: MemoryStored, digest: str) -> bool:
        return (
            event.key in self.forgotten_keys
            or digest in self.forgotten_hashes
            or event.goal_id in self.forgotten_goals
        )

    def store(self, event: MemoryStored, digest: str | None = None) -> Item | None:
        """Fold one ``memory_stored``; returns the new item, or None (merged, known, forgotten).

        ``digest``: the text's ``content_hash``, if the caller has it already.
        """
        digest = digest or content_hash(event.text)
        if event.key in self._by_key or self.is_forgotten(event, digest):
            return None
        existing = self._by_hash.get(digest)
        if existing is not None:
            item = self.items[existing]
            item.keys.append(event.key)
            if event.goal_id not in item.goals:
                item.goals.append(event.goal_id)
            item.importance = min(1.0, max(item.importance, event.importance) + REPEAT_BOOST)
            item.last_stored_at = max(item.last_stored_at, event.occurred_at)
            self._by_key[event.key] = existing
            return None
        item = Item(
            item_id=self.next_item_id,
            content_hash=digest,
            key=event.key,
            text=event.text,
            kind=event.kind,
            goal_id=event.goal_id,
            source_event_id=event.source_event_id,
            recorded_at=event.occurred_at,
            last_stored_at=event.occurred_at,
            importance=event.importance,
            metadata=dict(event.metadata),
            keys=[event.key],
            goals=[event.goal_id],
        )
        self._insert(item)
        return item

    def _insert(self, item: Item) -> None:
        self.next_item_id = max(self.next_item_id, item.item_id + 1)
        self.items[item.item_id] = item
        self._by_hash[item.content_hash] = item.item_id
        for key in item.keys:
            self._by_key[key] = item.item_id
        self._lexical.add(item.item_id, item.text)

    def forget(self, event: MemoryForgotten) -> list[Item]:
        """Fold one ``memory_forgotten``; returns the items removed."""
        if event.key:
            self.forgotten_keys.add(event.key)
            if event.content_hash:
                self.forgotten_hashes.add(event.content_hash)
            item = self.lookup(event.key)
            doomed = [item] if item is not None else []
        else:
            self.forgotten_goals.add(event.goal_id)
            doomed = [item for item in self.items.values() if event.goal_id in item.goals]
        for item in doomed:
            self._remove(item)
        return doomed

    def _remove(self, item: Item) -> None:
        self.forgotten_hashes.add(item.content_hash)
        self.forgotten_keys.update(item.keys)
        del self.items[item.item_id]
        del self._by_hash[item.content_hash]
        for key in item.keys:
            self._by_key.pop(key, None)
        self._lexical.remove(item.item_id)

    def restore(self, items: Iterable[Item]) -> None:
        """Load items from a snapshot (their ids and order kept)."""
        for item in sorted(items, key=lambda i: i.item_id):
            self._insert(item)

    def search(
        self,
        query: str,
        k: int,
        *,
        where: SearchFilter | None = None,
        now: datetime | None = None,
        dense: Sequence[int] | None = None,
    ) -> list[MemoryItem]:
        """The ``k`` best items for ``query``, best first.

        ``dense``: item ids ranked by embedding similarity (best first); given, the lexical
        and dense rankings are fused by reciprocal rank fusion.
        """
        if k <= 0:
            return []
        where = where or SearchFilter()
        # Unfiltered (a planner's context): only each term's best candidates, so the cost stays
        # flat as memory grows. A filtered search looks at every match the filter may admit.
        per_term = None if where != SearchFilter() else CANDIDATES_PER_TERM
        lexical = {
            i: s
            for i, s in self._lexical.scores(query, per_term=per_term).items()
            if where.admits(self.items[i])
        }
        if dense is not None:
            dense_ranked = [i for i in dense if i in self.items and where.admits(self.items[i])]
            lexical_ranked = sorted(lexical, key=lambda i: (-lexical[i], i))
            relevance = reciprocal_rank_fusion(lexical_ranked, dense_ranked)
        else:
            relevance = lexical
        scored = [
            (score * self._weight(self.items[i], now), self.items[i])
            for i, score in relevance.items()
        ]
        scored.sort(key=lambda pair: (-pair[0], -pair[1].item_id))
        return [_as_memory_item(item, score) for score, item in scored[:k]]

    def _weight(self, item: Item, now: datetime | None) -> float:
        recency = 1.0
        if now is not None:
            age_days = max(0.0, (now - item.last_stored_at).total_seconds() / 86400.0)
            recency = 0.5 ** (age_days / RECENCY_HALF_LIFE_DAYS)
        return 1.0 + IMPORTANCE_WEIGHT * item.importance + RECENCY_WEIGHT * recency


def _as_memory_item(item: Item, score: float) -> MemoryItem:
    return MemoryItem(
        key=item.key,
        text=item.text,
        # Rounded so the recorded context_provided event reads cleanly; ranking used full precision.
        score=round(score, 6),
        goal_id=item.goal_id,
        source_event_id=item.source_event_id,
        kind=item.kind,
        recorded_at=item.recorded_at,
    )
