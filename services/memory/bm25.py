"""Okapi BM25 over short texts: the lexical ranking memory uses by default. Pure, no I/O.

Documents are identified by integers chosen by the caller. Scores use the usual constants
(k1 = 1.2, b = 0.75) and Lucene's always-positive idf, ``ln(1 + (N - df + 0.5) / (df + 0.5))``,
so a term found in every document still counts a little rather than pushing a score below 0.

A search costs the same however much is stored: each term's postings are also kept ranked by
the document's impact for that term (its BM25 term weight against a fixed reference length,
in buckets), newest first within a bucket, and ``scores(query, per_term=N)`` scores exactly
only the union of each query term's best ``N`` documents. A term held by at most ``N``
documents is taken whole, so small memories rank exactly as an exhaustive search does.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

__all__ = ["CANDIDATES_PER_TERM", "K1", "STOPWORDS", "B", "Bm25Index", "tokenize"]

K1 = 1.2
B = 0.75
# The best documents of each query term that a search scores (see the module docstring).
CANDIDATES_PER_TERM = 200
# Impacts are computed against this length (tokens): memories are a line or two.
_REFERENCE_LENGTH = 12.0
_BUCKETS_PER_UNIT = 32

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
        # term -> impact bucket -> documents, oldest first (appended as they are added)
        self._ranked: dict[str, dict[int, list[int]]] = {}
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
        for term, tf in counts.items():
            self._postings.setdefault(term, set()).add(doc_id)
            bucket = _impact_bucket(tf, len(terms))
            self._ranked.setdefault(term, {}).setdefault(bucket, []).append(doc_id)

    def remove(self, doc_id: int) -> None:
        counts = self._terms.pop(doc_id, None)
        if counts is None:
            return
        length = self._lengths.pop(doc_id)
        self._total_length -= length
        for term, tf in counts.items():
            holders = self._postings[term]
            holders.discard(doc_id)
            ranked = self._ranked[term]
            bucket = _impact_bucket(tf, length)
            ranked[bucket].remove(doc_id)  # forgetting is rare; its cost is the bucket's size
            if not ranked[bucket]:
                del ranked[bucket]
            if not holders:
                del self._postings[term]
                del self._ranked[term]

    def scores(self, query: str, *, per_term: int | None = None) -> dict[int, float]:
        """Documents sharing a term with ``query``, with their BM25 score (all > 0).

        ``per_term``: only the union of each term's best ``per_term`` documents is scored
        (exactly, over every query term); None scores every document sharing a term.
        """
        # Repeating a word in the query does not make it count twice.
        query_terms = sorted(set(tokenize(query)))
        total = len(self._terms)
        if not query_terms or not total:
            return {}
        average = max(self._total_length / total, 1.0)
        present = [term for term in query_terms if term in self._postings]
        idfs = {
            term: math.log(
                1.0 + (total - len(self._postings[term]) + 0.5) / (len(self._postings[term]) + 0.5)
            )
            for term in present
        }
        if per_term is None:
            candidates: set[int] = set().union(*(self._postings[term] for term in present))
        else:
            candidates = set()
            for term in present:
                candidates.update(self._best(term, per_term))
        scores: dict[int, float] = {}
        for doc_id in candidates:
            counts = self._terms[doc_id]
            norm = K1 * (1.0 - B + B * self._lengths[doc_id] / average)
            score = 0.0
            for term in present:
                tf = counts.get(term, 0)
                if tf:
                    score += idfs[term] * tf * (K1 + 1.0) / (tf + norm)
            scores[doc_id] = score
        return scores

    def _best(self, term: str, limit: int) -> list[int]:
        """The term's ``limit`` documents of highest impact, the newest first among equals."""
        holders = self._postings[term]
        if len(holders) <= limit:
            return list(holders)
        best: list[int] = []
        for bucket in sorted(self._ranked[term], reverse=True):
            docs = self._ranked[term][bucket]
            best.extend(docs[-1 : -(limit - len(best)) - 1 : -1])
            if len(best) >= limit:
                break
        return best


def _impact_bucket(tf: int, length: int) -> int:
    """A document's BM25 term weight (without idf) against the reference length, bucketed."""
    norm = K1 * (1.0 - B + B * length / _REFERENCE_LENGTH)
    return round(tf * (K1 + 1.0) / (tf + norm) * _BUCKETS_PER_UNIT)
