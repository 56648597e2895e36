"""Memory's inputs and outputs (see services/manifest.py)."""

from __future__ import annotations

from events.catalog import (
    ContextProvided,
    ContextRequested,
    GoalCompleted,
    MemoryCompacted,
    MemoryForgotten,
    MemoryStored,
    TaskCompleted,
)
from events.memory_commands import INTAKE_MEMORY_FORGET
from events.subjects import EVENTS_STREAM, INTAKE_STREAM
from services.manifest import Input, ServiceManifest
from services.memory.protocol import MEMORY_QUERY

__all__ = ["MANIFEST"]

MANIFEST = ServiceManifest(
    name="memory",
    inputs=(
        Input(
            EVENTS_STREAM, "memory: context requests (a model plans)", events=(ContextRequested,)
        ),
        Input(INTAKE_STREAM, "memory: forget commands", commands=(INTAKE_MEMORY_FORGET,)),
    ),
    produces=(ContextProvided, MemoryStored, MemoryForgotten, MemoryCompacted),
    # Its index: completed tasks are observations, completed goals may call for lessons.
    follows=(TaskCompleted, GoalCompleted, MemoryStored, MemoryForgotten, MemoryCompacted),
    answers=(MEMORY_QUERY,),
)
