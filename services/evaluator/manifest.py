"""The evaluator's inputs and outputs (see services/manifest.py)."""

from __future__ import annotations

from events.catalog import EvaluationCompleted, EvaluationRequested, LlmRequested, LlmResponded
from events.subjects import EVENTS_STREAM
from services.manifest import Input, ServiceManifest

__all__ = ["MANIFEST"]

MANIFEST = ServiceManifest(
    name="evaluator",
    inputs=(Input(EVENTS_STREAM, "evaluator: plans to judge", events=(EvaluationRequested,)),),
    produces=(EvaluationCompleted, LlmRequested, LlmResponded),
    live=True,
)
