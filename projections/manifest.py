"""The projector's declaration (see services/manifest.py): it reads the whole log from its own
checkpoint (no durable consumer), produces no events, and answers queries."""

from __future__ import annotations

from events.subjects import QUERY_SUBJECT
from projections.protocol import PROJECTOR_CONTROL
from services.manifest import ServiceManifest

__all__ = ["MANIFEST"]

MANIFEST = ServiceManifest(
    name="projector", inputs=(), produces=(), answers=(QUERY_SUBJECT, PROJECTOR_CONTROL)
)
