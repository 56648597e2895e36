"""The executor's inputs and outputs (see services/manifest.py)."""

from __future__ import annotations

from events.catalog import (
    LlmRequested,
    LlmResponded,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    ToolCalled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
)
from events.subjects import EVENTS_STREAM
from services.manifest import Input, ServiceManifest

__all__ = ["MANIFEST"]

MANIFEST = ServiceManifest(
    name="executor",
    inputs=(Input(EVENTS_STREAM, "executor: tasks to run", events=(TaskScheduled,)),),
    produces=(
        TaskStarted,  # ReAct tasks; a plain task starts with its first tool_called
        ToolCalled,
        ToolReturned,  # ReAct steps; a plain task's return is its task_completed
        ToolFailed,
        TaskCompleted,
        TaskFailed,
        ToolRefused,
        LlmRequested,
        LlmResponded,
    ),
    live=True,
)
