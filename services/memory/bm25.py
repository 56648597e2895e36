"""Okapi BM25 over short texts: the lexical ranking memory uses by default. Pure, no I/O.

Documents are identified by integers chosen by the caller. Scores use the usual constants
(k1 = 1.2, b = 0.75) and Lucene's always-positive idf, ``ln(1 + (N - df + 0.5) / (df + 0.5))``,
so a term found in every document still counts a little rather than pushing a score below 0.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

__all__ = ["K1", "STOPWORDS", "B", "Bm25Index", "tokenize"]

K1 = 1.2
B = 0.75

# Unicode letters and digits; underscores split words like punctuation does.
_WORD = re.compile(r"[^\W_]+")

# Words that appear in nearly every text and would only add noise to the ranking.
# fmt: off
STOPWORDS: frozenset[str] = frozenset({  # kept compact: one word per line would hide the list
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "did", "do", "does",
    "for", "from", "had", "has", "have", "he", "her", "his", "i", "if", "in", "into", "is", "it",
    "its", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "to", "too", "was", "we", "were",
    "what", "when", "where", "which", "who", "will", "with", "you", "your", "how", "why",
})
# fmt: on


@lru_cache(maxsize=1 << 16)  # vocabularies are small; stemming each word once is enough
def _stem(word: str) -> str:
    """A light plural/-ing/-ed strip, so "deployments" meets "deployment". Deterministic."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) - len(suffix) >= 3 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def tokenize(text: str) -> list[str]:
    """Lowercase, stemmed word tokens (letters and digits), stopwords removed, in text order."""
    return [_stem(word) for word in _WORD.findall(text.lower()) if word not in STOPWORDS]


class Bm25Index:
    """Postings and document lengths; documents can be added and removed in any order."""

    def __init__(self) -> None:
        self._terms: dict[int, Counter[str]] = {}
        self._lengths: dict[int, int] = {}
        self._postings: dict[str, set[int]] = {}
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._terms)

    def add(self, doc_id: int, text: str) -> None:
        if doc_id in self._terms:
            return
        terms = tokenize(text)
        counts = Counter(terms)
        self._terms[doc_id] = counts
        self._lengths[doc_id] = len(terms)
        self._total_length += len(terms)
        for term in counts:
            self._postings.setdefault(term, set()).add(doc_id)

    def remove(self, doc_id: int) -> None:
        counts = self._terms.pop(doc_id, None)
        if counts is None:
            return
        self._total_length -= self._lengths.pop(doc_id)
        for term in counts:
            holders = self._postings[term]
            holders.discard(doc_id)
            if not holders:
                del self._postings[term]

    def scores(self, query: str) -> dict[int, float]:
        """Every document sharing a term with ``query``, with its BM25 score (all > 0)."""
        # Repeating a word in the query does not make it count twice.
        query_terms = sorted(set(tokenize(query)))
        total = len(self._terms)
        if not query_terms or not total:
            return {}
        average = max(self._total_length / total, 1.0)
        scores: dict[int, float] = {}
        for term in query_terms:
            holders = self._postings.get(term)
            if not holders:
                continue
            idf = math.log(1.0 + (total - len(holders) + 0.5) / (len(holders) + 0.5))
            for doc_id in holders:
                tf = self._terms[doc_id][term]
                norm = K1 * (1.0 - B + B * self._lengths[doc_id] / average)
                scores[doc_id] = scores.get(doc_id, 0.0) + idf * tf * (K1 + 1.0) / (tf + norm)
        return scores
