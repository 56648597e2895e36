"""Lexical retrieval quality on a labelled corpus kept in tests/data/memory_corpus.json.

The corpus was written for this test: 205 operational notes of a fictional company (with
distractor topics: recipes, gardening, sports...) and 40 questions phrased differently from
the notes, each labelled with the notes that answer it. recall@5 is the share of a question's
relevant notes found in its top 5, averaged over the questions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from events.catalog import MemoryStored
from services.memory.longterm import LongTermMemory

CORPUS = Path(__file__).parent.parent / "data" / "memory_corpus.json"
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def recall_at(k: int) -> float:
    corpus = json.loads(CORPUS.read_text())
    memory = LongTermMemory()
    for doc in corpus["documents"]:
        memory.store(
            MemoryStored(
                event_id=f"ev-{doc['id']}",
                goal_id="g-corpus",
                occurred_at=NOW,
                causation_id=None,
                correlation_id="g-corpus",
                producer="test",
                key=doc["id"],
                text=doc["text"],
                source_event_id=f"src-{doc['id']}",
            )
        )
    assert len(memory) >= 200
    assert len(corpus["queries"]) >= 30
    recalls = []
    for query in corpus["queries"]:
        found = {item.key for item in memory.search(query["query"], k, now=NOW)}
        relevant = set(query["relevant"])
        recalls.append(len(found & relevant) / len(relevant))
    return sum(recalls) / len(recalls)


def test_bm25_recall_at_5_on_the_labelled_corpus_is_at_least_0_8() -> None:
    recall = recall_at(5)

    print(f"\nBM25 recall@5 on {CORPUS.name}: {recall:.3f}")
    assert recall >= 0.8
