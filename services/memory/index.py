"""An in-memory lexical index of what the memory service has stored.

The index is a read model: it is rebuilt by folding ``memory_stored`` events in log order, so
two replicas that have seen the same events rank the same query identically. Scoring is a
small TF-IDF with length normalisation; a later issue replaces it with BM25 and embeddings.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from events.catalog import MemoryStored
from events.model import MemoryItem

__all__ = ["STOPWORDS", "MemoryIndex", "tokenize"]

# Unicode letters and digits; underscores split words like punctuation does.
_WORD = re.compile(r"[^\W_]+")

# Words that appear in nearly every text and would only add noise to the ranking.
# fmt: off
STOPWORDS: frozenset[str] = frozenset({  # kept compact: one word per line would hide the list
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "did", "do", "does",
    "for", "from", "had", "has", "have", "he", "her", "his", "i", "if", "in", "into", "is", "it",
    "its", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "to", "too", "was", "we", "were",
    "what", "when", "where", "which", "who", "will", "with", "you", "your",
})
# fmt: on


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens (letters and digits), stopwords removed, in text order."""
    return [word for word in _WORD.findall(text.lower()) if word not in STOPWORDS]


@dataclass(frozen=True, slots=True)
class _Document:
    position: int  # order of recording: a higher position is more recent
    key: str
    text: str
    goal_id: str
    source_event_id: str
    term_counts: Counter[str]
    length: int


class MemoryIndex:
    """Lexical search over stored memories, deterministic for a given sequence of events."""

    def __init__(self) -> None:
        self._documents: dict[str, _Document] = {}
        # term -> keys of the documents containing it, so a search touches only candidates.
        self._postings: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._documents)

    def add(self, event: MemoryStored) -> None:
        """Record a memory. A key already recorded is kept as first seen (redeliveries, replay)."""
        if event.key in self._documents:
            return
        terms = tokenize(event.text)
        document = _Document(
            position=len(self._documents),
            key=event.key,
            text=event.text,
            goal_id=event.goal_id,
            source_event_id=event.source_event_id,
            term_counts=Counter(terms),
            length=len(terms),
        )
        self._documents[event.key] = document
        for term in document.term_counts:
            self._postings.setdefault(term, set()).add(event.key)

    def search(self, query: str, k: int) -> list[MemoryItem]:
        """The ``k`` best matches for ``query``, best first; documents scoring 0 are left out."""
        # Repeating a word in the query does not make it count twice.
        query_terms = sorted(set(tokenize(query)))
        if k <= 0 or not query_terms:
            return []
        total = len(self._documents)
        scores: dict[str, float] = {}
        for term in query_terms:
            holders = self._postings.get(term, set())
            if not holders:
                continue
            # Always positive, since a term's document frequency never exceeds ``total``.
            idf = math.log((total + 1) / (len(holders) + 0.5))
            for key in holders:
                document = self._documents[key]
                # Sublinear term frequency: the tenth mention says less than the first.
                tf_weight = 1.0 + math.log(document.term_counts[term])
                scores[key] = scores.get(key, 0.0) + tf_weight * idf
        ranked = sorted(
            (
                (score / math.sqrt(self._documents[key].length), self._documents[key])
                for key, score in scores.items()
            ),
            key=lambda scored: (-scored[0], -scored[1].position, scored[1].key),
        )
        return [_as_item(document, score) for score, document in ranked[:k] if score > 0]


def _as_item(document: _Document, score: float) -> MemoryItem:
    return MemoryItem(
        key=document.key,
        text=document.text,
        # Rounded so the recorded context_provided event reads cleanly; ranking used full precision.
        score=round(score, 6),
        goal_id=document.goal_id,
        source_event_id=document.source_event_id,
    )
