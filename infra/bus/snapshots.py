"""Snapshots of read models, kept in a JetStream object store (provisioned on first use).

An object store chunks what it stores, so a snapshot may exceed the server's message size
limit. Each snapshot is one named object; saving replaces it, atomically for readers (the
object's metadata message points at the chunks of the latest complete write).
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from infra.settings import Settings

__all__ = ["MEMORY_SNAPSHOTS", "SnapshotStore"]

MEMORY_SNAPSHOTS = "AGORA_MEMORY_SNAPSHOTS"


@dataclass
class SnapshotStore:
    store: ObjectStore

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings, bucket: str) -> SnapshotStore:
        try:
            store = await js.object_store(bucket)
        except BucketNotFoundError:
            store = await js.create_object_store(
                bucket,
                ObjectStoreConfig(
                    description="agora: snapshots of read models, each with the stream "
                    "sequence it covers",
                    storage=StorageType.FILE,
                    replicas=settings.stream_replicas,
                ),
            )
        return cls(store)

    async def save(self, name: str, data: bytes) -> None:
        await self.store.put(name, data)

    async def load(self, name: str) -> bytes | None:
        """The snapshot's bytes, or None if there is none (yet)."""
        try:
            result = await self.store.get(name)
        except NotFoundError:
            return None
        return bytes(result.data or b"")
