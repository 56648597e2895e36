"""The outputs store: large outputs kept once in a JetStream object store, read back on demand.

Writers (``EventPublisher``) store an event's large outputs here before the event, which then
carries references (events/outputs.py). Readers that need the values (services on their
input, a goal's history, the projector, the client) resolve the references with
:meth:`OutputStore.resolve`. Objects are named by the sha256 of their content, so storing
twice (a redelivery, a crash between blob and event) finds the object there and writes
nothing; values never change, so a read is cached and checked against its digest.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from events.codec import decode_event, encode
from events.errors import AgoraError
from events.model import Event, OutputRef
from events.outputs import Blob, externalize, internalize, may_hold_refs, refs_of
from infra.settings import Settings

__all__ = ["OUTPUTS_BUCKET", "OutputStore", "OutputUnavailableError", "provision_outputs"]

OUTPUTS_BUCKET = "AGORA_OUTPUTS"
_CACHE_BYTES = 64 * 1024 * 1024


class OutputUnavailableError(AgoraError):
    """A referenced output cannot be read back (missing, or its bytes do not match)."""


async def provision_outputs(js: JetStreamContext, settings: Settings) -> None:
    """Create the outputs bucket unless it exists (beside the streams, at provisioning)."""
    try:
        await js.object_store(OUTPUTS_BUCKET)
    except BucketNotFoundError:
        await js.create_object_store(
            OUTPUTS_BUCKET,
            ObjectStoreConfig(
                description="agora: task outputs too large to carry in events, by sha256",
                storage=StorageType.FILE,
                replicas=settings.stream_replicas,
            ),
        )


@dataclass
class OutputStore:
    """Stores and resolves the large outputs of events, in bucket ``bucket``."""

    js: JetStreamContext
    threshold: int
    bucket: str = OUTPUTS_BUCKET
    _store: ObjectStore | None = None
    _cache: OrderedDict[str, tuple[str, int]] = field(default_factory=OrderedDict)
    _cached_bytes: int = 0

    async def offload(self, event: Event) -> Event:
        """``event`` as it is to be written: large outputs stored, references in their place."""
        small, blobs = externalize(event, bucket=self.bucket, threshold=self.threshold)
        for blob in blobs:
            await self._put(blob)
        return small

    async def resolve(self, event: Event) -> Event:
        """``event`` with every reference replaced by its value."""
        refs = refs_of(event)
        if not refs:
            return event
        values = {ref.name: await self.read(ref) for ref in refs}
        return internalize(event, values)

    async def resolve_all(self, events: Sequence[Event]) -> list[Event]:
        return [await self.resolve(event) for event in events]

    async def inline_payloads(self, payloads: Sequence[bytes]) -> list[bytes]:
        """Stored events' bytes with references resolved, as if written inline (the
        projector derives its views from raw bytes). Bytes without references are kept."""
        return [await self._inlined(payload) for payload in payloads]

    async def _inlined(self, payload: bytes) -> bytes:
        if not may_hold_refs(payload):
            return payload
        try:
            event = decode_event(payload)
        except AgoraError:
            return payload  # the projector records it as undecodable
        return encode(await self.resolve(event)) if refs_of(event) else payload

    async def read(self, ref: OutputRef) -> str:
        cached = self._cache.get(ref.name)
        if cached is not None:
            self._cache.move_to_end(ref.name)
            return cached[0]
        try:
            result = await (await self._bucket(ref.bucket)).get(ref.name)
        except NotFoundError as exc:  # the bucket or the object
            raise OutputUnavailableError(
                f"output {ref.name} ({ref.size} bytes) is missing from bucket {ref.bucket}"
            ) from exc
        data = bytes(result.data or b"")
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise OutputUnavailableError(
                f"output {ref.name} in bucket {ref.bucket} does not match its sha256"
            )
        text = data.decode()
        self._remember(ref.name, text, len(data))
        return text

    async def _put(self, blob: Blob) -> None:
        store = await self._bucket(self.bucket)
        try:
            info = await store.get_info(blob.name)
        except NotFoundError:
            info = None
        if info is not None and info.size == len(blob.data):
            return  # named by its content: already there, from an earlier write
        await store.put(blob.name, blob.data)

    async def _bucket(self, bucket: str) -> ObjectStore:
        if bucket != self.bucket:
            return await self.js.object_store(bucket)
        if self._store is None:
            self._store = await self.js.object_store(bucket)
        return self._store

    def _remember(self, name: str, text: str, size: int) -> None:
        if size > _CACHE_BYTES // 4:
            return
        self._cache[name] = (text, size)
        self._cached_bytes += size
        while self._cached_bytes > _CACHE_BYTES:
            _, (_, dropped) = self._cache.popitem(last=False)
            self._cached_bytes -= dropped
