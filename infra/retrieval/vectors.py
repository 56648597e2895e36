"""Embedding vectors in DuckDB: ``FLOAT[n]`` columns ranked with ``array_cosine_similarity``.

Vectors are keyed by the content hash of the text they embed (and the model), so a memory
restarted from its snapshot, or storing a text it has seen before, never pays for the same
embedding twice. The file is this replica's cache (``<data dir>/memory/vectors.duckdb``);
deleting it only costs re-embedding.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb

from events.errors import ConfigurationError

__all__ = ["VectorStore"]


class VectorStore:
    def __init__(self, path: Path | str, model: str) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = duckdb.connect(str(path))
        self._model = model
        self._lock = threading.Lock()
        self.dimensions: int | None = None
        with self._lock:
            row = self._db.execute(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'vectors' AND column_name = 'v'"
            ).fetchone()
        if row is not None:
            self.dimensions = int(str(row[0]).rsplit("[", 1)[1].rstrip("]"))

    def _create(self, dimensions: int) -> None:
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS vectors (model VARCHAR, content_hash VARCHAR, "
            f"v FLOAT[{dimensions}], PRIMARY KEY (model, content_hash))"
        )
        self.dimensions = dimensions

    def missing(self, hashes: Sequence[str]) -> list[str]:
        """Which of ``hashes`` have no vector yet, in the order given."""
        if self.dimensions is None or not hashes:
            return list(hashes)
        with self._lock:
            have = {
                row[0]
                for row in self._db.execute(
                    "SELECT content_hash FROM vectors WHERE model = ? AND content_hash IN "
                    "(SELECT unnest(?::VARCHAR[]))",
                    [self._model, list(hashes)],
                ).fetchall()
            }
        return [h for h in hashes if h not in have]

    def add(self, hashes: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        if not hashes:
            return
        dimensions = len(vectors[0])
        with self._lock:
            if self.dimensions is None:
                self._create(dimensions)
            if dimensions != self.dimensions:
                raise ConfigurationError(
                    f"the embeddings have {dimensions} dimensions but the vector cache holds "
                    f"{self.dimensions}: delete the cache file after changing the model"
                )
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(self._model, h, list(v)) for h, v in zip(hashes, vectors, strict=True)],
            )

    def nearest(self, vector: Sequence[float], limit: int) -> list[str]:
        """Content hashes by cosine similarity to ``vector``, most similar first."""
        if self.dimensions is None or len(vector) != self.dimensions:
            return []
        with self._lock:
            rows = self._db.execute(
                f"SELECT content_hash FROM vectors WHERE model = ? ORDER BY "  # noqa: S608 - int
                f"array_cosine_similarity(v, ?::FLOAT[{self.dimensions}]) DESC, content_hash "
                "LIMIT ?",
                [self._model, list(vector), limit],
            ).fetchall()
        return [row[0] for row in rows]

    def __len__(self) -> int:
        if self.dimensions is None:
            return 0
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM vectors").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._db.close()
