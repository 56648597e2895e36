"""The memory service's decisions: what to remember, and what context to hand back. Pure."""

from __future__ import annotations

from events.catalog import ContextProvided, ContextRequested, MemoryStored, TaskCompleted
from events.model import Stamp
from services.memory.index import MemoryIndex

__all__ = ["MAX_OBSERVATION_OUTPUT_CHARS", "observe", "provide_context"]

# Long tool outputs (a fetched page, a file) would dominate the index and bloat every
# context_provided event that quotes them; the beginning is what later plans need.
MAX_OBSERVATION_OUTPUT_CHARS = 2000


def observe(event: TaskCompleted, stamp: Stamp) -> list[MemoryStored]:
    """Remember what one completed task produced, as a single observation."""
    output = event.output[:MAX_OBSERVATION_OUTPUT_CHARS]
    return [
        MemoryStored(
            **stamp.envelope("memory_stored", "memory", event.event_id),
            key=f"{event.goal_id}/{event.iteration}/{event.task_id}",
            text=f"{event.tool} -> {output}",
            kind="observation",
            source_event_id=event.event_id,
        )
    ]


def provide_context(index: MemoryIndex, request: ContextRequested, stamp: Stamp) -> ContextProvided:
    """Answer a context request with the best matches, from every goal including the asker's."""
    return ContextProvided(
        **stamp.envelope("context_provided", "context", request.event_id),
        request_id=request.event_id,
        iteration=request.iteration,
        items=tuple(index.search(request.query, request.k)),
    )
