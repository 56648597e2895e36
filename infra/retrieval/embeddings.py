"""Embeddings over HTTP: any OpenAI-compatible ``POST /v1/embeddings`` endpoint.

``AGORA_EMBEDDINGS_URL`` is the server's base URL (``https://api.openai.com``,
``http://127.0.0.1:8080``, with or without ``/v1``), ``AGORA_EMBEDDINGS_MODEL`` the model
and ``AGORA_EMBEDDINGS_KEY`` the bearer token, if the server wants one.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import msgspec

from events.errors import AgoraError
from infra.settings import Settings

__all__ = ["EmbeddingError", "HttpEmbedder", "embeddings_endpoint"]

MAX_BATCH = 64  # texts per request


class EmbeddingError(AgoraError):
    """The embeddings endpoint failed or answered something that is not embeddings."""


class _Datum(msgspec.Struct):
    embedding: list[float]
    index: int = 0


class _Response(msgspec.Struct):
    data: list[_Datum]


_decoder = msgspec.json.Decoder(_Response)


def embeddings_endpoint(base_url: str) -> str:
    url = base_url.rstrip("/")
    if url.endswith("/embeddings"):
        return url
    return url + ("/embeddings" if url.endswith("/v1") else "/v1/embeddings")


class HttpEmbedder:
    def __init__(self, settings: Settings, *, timeout_s: float = 30.0) -> None:
        assert settings.embeddings_url is not None
        self.url = embeddings_endpoint(settings.embeddings_url)
        self.model = settings.embeddings_model
        headers = {"Authorization": f"Bearer {settings.embeddings_key}"}
        self._client = httpx.AsyncClient(
            timeout=timeout_s, headers=headers if settings.embeddings_key else {}
        )
        self._dimensions: int | None = None

    @property
    def dimensions(self) -> int | None:
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), MAX_BATCH):
            vectors += await self._embed_batch(list(texts[start : start + MAX_BATCH]))
        return vectors

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        try:
            response = await self._client.post(self.url, json={"model": self.model, "input": texts})
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"the embeddings endpoint {self.url} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise EmbeddingError(
                f"the embeddings endpoint {self.url} answered {response.status_code}: "
                f"{response.text[:200]}"
            )
        try:
            data = sorted(_decoder.decode(response.content).data, key=lambda d: d.index)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise EmbeddingError(f"{self.url} did not answer with embeddings: {exc}") from exc
        if len(data) != len(texts):
            raise EmbeddingError(f"{self.url} returned {len(data)} embeddings for {len(texts)}")
        for datum in data:
            if self._dimensions is None:
                self._dimensions = len(datum.embedding)
            if len(datum.embedding) != self._dimensions or not self._dimensions:
                raise EmbeddingError(
                    f"{self.url} returned a vector of {len(datum.embedding)} dimensions, "
                    f"expected {self._dimensions}"
                )
        return [d.embedding for d in data]

    async def close(self) -> None:
        await self._client.aclose()
