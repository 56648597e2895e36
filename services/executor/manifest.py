"""The executor's inputs and outputs (see services/manifest.py)."""

from __future__ import annotations

from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    GoalCancelled,
    IterationInterrupted,
    LlmRequested,
    LlmResponded,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TimerFired,
    TimerStarted,
    ToolCalled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
    ToolsListed,
)
from events.subjects import EVENTS_STREAM, INTAKE_STREAM, INTAKE_WAKEUP
from services.manifest import Input, ServiceManifest

__all__ = ["MANIFEST"]

MANIFEST = ServiceManifest(
    name="executor",
    inputs=(
        Input(
            EVENTS_STREAM,
            "executor: tasks to run, and the answers and timers that resume a ReAct task's "
            "waiting call",
            events=(TaskScheduled, ApprovalGranted, ApprovalDenied, TimerFired),
        ),
        # Durable timers that fell due: nats-server republishes each to agora.intake.wakeup.
        Input(INTAKE_STREAM, "executor: durable timers that fell due", commands=(INTAKE_WAKEUP,)),
    ),
    produces=(
        TaskStarted,  # ReAct tasks; a plain task starts with its first tool_called
        ToolCalled,
        ToolReturned,  # ReAct steps; a plain task's return is its task_completed
        ToolFailed,
        TaskCompleted,
        TaskFailed,
        ToolRefused,
        TaskCancelled,  # its goal was cancelled: the running call stopped, or never began
        TimerStarted,  # a long sleep (a ReAct task's call too) waits as a durable timer
        TimerFired,
        LlmRequested,
        LlmResponded,
        ToolsListed,  # what each MCP server offers, for planners and `agora tools`
        ApprovalRequested,  # a ReAct step's call the goal's approval policy names
    ),
    # Every replica hears a cancellation (or an iteration's interruption by a message), so the
    # one running the goal's task stops it.
    follows=(GoalCancelled, IterationInterrupted),
    live=True,
)
