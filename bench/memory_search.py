"""Context search over a large memory: what a model-planned goal's context request costs.

The index holds ``--memories`` items: the labelled corpus of tests/data/memory_corpus.json
(205 documents) among observations such as a long-running platform accumulates: tool results
whose words follow a Zipf distribution over a 40,000-word vocabulary, one in five of them
also using a word of the corpus, and the benchmark goal's own echo observations (one in three),
so common words are held by tens of thousands of items. The queries are the corpus's 40
labelled queries. It reports search latency (p50/p99, CPU-bound, one process) and recall@5 of
the labelled queries, beside an exhaustive search over the same index.

python -m bench.memory_search [--memories 100000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import Row
from events.catalog import MemoryStored
from services.memory.longterm import LongTermMemory

__all__ = ["run_memory_search"]

CORPUS = Path(__file__).parents[1] / "tests" / "data" / "memory_corpus.json"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOOLS = ("echo", "calculator", "http_get", "read_file", "python", "sleep")


def _stored(n: int, key: str, text: str, kind: str = "observation") -> MemoryStored:
    return MemoryStored(
        event_id=f"m-{n}",
        goal_id=f"g-{n % 5000}",
        occurred_at=T0 + timedelta(seconds=n),
        causation_id=None,
        correlation_id="c",
        producer="bench",
        key=key,
        text=text,
        kind=kind,
        source_event_id=f"s-{n}",
    )


def build(memories: int, seed: int = 7) -> tuple[LongTermMemory, dict[str, object]]:
    corpus = json.loads(CORPUS.read_text())
    rng = random.Random(seed)
    memory = LongTermMemory()
    documents = corpus["documents"]
    for n, doc in enumerate(documents):
        memory.store(_stored(n, doc["id"], doc["text"]))
    corpus_words = sorted({w.strip(".,;:()").lower() for d in documents for w in d["text"].split()})
    vocabulary = [f"{_syllables(rng)}" for _ in range(VOCABULARY)]
    cumulative = list(itertools.accumulate(1.0 / (rank**1.1) for rank in range(1, VOCABULARY + 1)))
    n = len(documents)
    while len(memory) < memories:
        if n % 3 == 0:
            text = f"echo -> step of goal {n}"
        else:
            picked = rng.choices(vocabulary, cum_weights=cumulative, k=10)
            if n % 5 == 0:
                picked.append(rng.choice(corpus_words))
            text = f"{rng.choice(TOOLS)} -> {' '.join(picked)} ({n})"
        memory.store(_stored(n, f"g-{n}/1/s{n % 3}", text))
        n += 1
    return memory, corpus


VOCABULARY = 40_000


def _syllables(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))


def recall_at_5(memory: LongTermMemory, corpus: dict[str, object]) -> float:
    """The share of each query's relevant notes in its top 5, averaged (as the unit test)."""
    queries = corpus["queries"]
    assert isinstance(queries, list)
    recalls = []
    for query in queries:
        found = {item.key for item in memory.search(query["query"], 5, now=T0)}
        relevant = set(query["relevant"])
        recalls.append(len(found & relevant) / len(relevant))
    return sum(recalls) / len(recalls)


def run_memory_search(memories: int = 100_000, rounds: int = 5) -> list[Row]:
    started = time.perf_counter()
    memory, corpus = build(memories)
    built_s = time.perf_counter() - started
    labelled = [q["query"] for q in corpus["queries"]]  # type: ignore[attr-defined]
    # A model-planned goal asks with its own text: words tens of thousands of items share.
    platform_like = [
        f"benchmark goal {n}: repeat each step of goal {n} and echo it"
        for n in range(0, 40_000, 1_000)
    ]
    queries = labelled + platform_like
    latencies: list[float] = []
    cpu0 = time.process_time()
    for _ in range(rounds):
        for query in queries:
            t0 = time.perf_counter()
            memory.search(query, 5, now=T0 + timedelta(days=1))
            latencies.append((time.perf_counter() - t0) * 1000)
    cpu_ms = (time.process_time() - cpu0) * 1000 / len(latencies)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99)]
    recall = recall_at_5(memory, corpus)
    details = {
        "memories": len(memory),
        "searches": len(latencies),
        "p99_ms": round(p99, 3),
        "cpu_ms_per_search": round(cpu_ms, 3),
        "recall_at_5": round(recall, 3),
        "index_build_s": round(built_s, 1),
    }
    return [
        Row(
            f"context search, {len(memory):,} memories",
            "p50 search",
            round(p50, 3),
            "ms",
            "≤ 2 ms",
            details,
        ),
        Row(
            f"context search, {len(memory):,} memories",
            "recall@5 of the labelled queries",
            round(recall, 3),
            "",
            "the corpus alone: 0.958",
            details,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memories", type=int, default=100_000)
    args = parser.parse_args()
    for row in run_memory_search(args.memories):
        print(row.scenario, "|", row.metric, "|", row.value, row.unit, "|", row.details)


if __name__ == "__main__":
    main()
