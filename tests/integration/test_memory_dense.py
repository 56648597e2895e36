"""Dense retrieval against a real HTTP embeddings endpoint on loopback (OpenAI-compatible).

The endpoint is a stdlib ``http.server`` in a thread that embeds deterministically: words are
mapped to concepts (so "car" and "automobile" meet) and hashed into 64 dimensions.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import MemoryStored
from infra.bus.publisher import EventPublisher
from infra.clients.memory import MemoryQueryError, ask_memory
from infra.settings import Settings
from services.memory.protocol import MemoryRequest
from tests.conftest import InProcessPlatform
from tests.support import wait_until

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
DIMENSIONS = 64
CONCEPTS = {"car": "vehicle", "automobile": "vehicle", "vehicle": "vehicle", "parked": "park",
            "parking": "park", "bay": "place", "where": "place"}  # fmt: skip


def embed(text: str) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"\w+", text.lower()):
        concept = CONCEPTS.get(word, word)
        slot = hashlib.blake2b(concept.encode(), digest_size=2).digest()
        vector[int.from_bytes(slot) % DIMENSIONS] += 1.0
    return vector


class EmbeddingServer(ThreadingHTTPServer):
    requests: list[dict[str, Any]]
    authorization: list[str | None]


class Handler(BaseHTTPRequestHandler):
    server: EmbeddingServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        self.server.authorization.append(self.headers.get("Authorization"))
        if self.path != "/v1/embeddings":
            self.send_error(404)
            return
        data = [
            {"object": "embedding", "index": i, "embedding": embed(text)}
            for i, text in enumerate(body["input"])
        ]
        payload = json.dumps({"object": "list", "data": data, "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def embeddings() -> Iterator[EmbeddingServer]:
    server = EmbeddingServer(("127.0.0.1", 0), Handler)
    server.requests, server.authorization = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stored(n: int, text: str) -> MemoryStored:
    return MemoryStored(
        event_id=f"ms-{n}",
        goal_id="g-dense",
        occurred_at=NOW,
        causation_id=None,
        correlation_id="g-dense",
        producer="memory@0.1.0",
        key=f"g-dense/1/s{n}",
        text=text,
        source_event_id=f"tc-{n}",
    )


async def test_hybrid_retrieval_finds_by_meaning_what_words_alone_miss(
    nc: NatsClient, settings: Settings, embeddings: EmbeddingServer
) -> None:
    host, port = embeddings.server_address[:2]
    configured = replace(
        settings,
        embeddings_url=f"http://{host}:{port}",
        embeddings_model="test-embed",
        embeddings_key="sk-test",
    )
    platform = InProcessPlatform(configured)
    platform.start("memory")
    try:
        await EventPublisher(nc)(
            [
                stored(1, "the automobile is parked in bay 7"),
                stored(2, "kiwi fruit salad recipe"),
                stored(3, "quarterly budget review notes"),
            ]
        )

        async def embedded() -> bool:
            try:
                stats = (await ask_memory(nc, MemoryRequest(op="stats"))).stats
            except MemoryQueryError:
                return False
            return bool(stats["vectors"] == 3)

        await wait_until(embedded, timeout_s=30, what="three items embedded")
        reply = await ask_memory(nc, MemoryRequest(op="search", query="where is my car", as_of=NOW))

        assert [item.key for item in reply.items][:1] == ["g-dense/1/s1"]
        assert embeddings.requests[0]["model"] == "test-embed"
        assert set(embeddings.authorization) == {"Bearer sk-test"}
        stats = (await ask_memory(nc, MemoryRequest(op="stats"))).stats
        assert stats["retrieval"] == "hybrid (bm25 + dense, rrf)"

        # The endpoint gone: searches still answer, lexically.
        embeddings.shutdown()
        embeddings.server_close()
        lexical = await ask_memory(nc, MemoryRequest(op="search", query="kiwi", as_of=NOW))
        assert [item.key for item in lexical.items] == ["g-dense/1/s2"]
    finally:
        await platform.stop()


async def test_without_an_embeddings_endpoint_a_word_miss_is_a_miss(
    nc: NatsClient, settings: Settings
) -> None:
    platform = InProcessPlatform(settings)
    platform.start("memory")
    try:
        acks = await EventPublisher(nc)([stored(1, "the automobile is parked in bay 7")])

        async def folded() -> bool:
            try:
                stats = (await ask_memory(nc, MemoryRequest(op="stats"))).stats
            except MemoryQueryError:
                return False
            return int(stats["applied_seq"]) >= acks[-1].seq

        await wait_until(folded, timeout_s=30, what="the item folded")
        reply = await ask_memory(nc, MemoryRequest(op="search", query="where is my car", as_of=NOW))

        assert reply.items == []
    finally:
        await platform.stop()
