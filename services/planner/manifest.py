"""The planner's inputs and outputs (see services/manifest.py)."""

from __future__ import annotations

from events.catalog import (
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCompleted,
    GoalFailed,
    GoalRejected,
    LeaseAcquired,
    LlmRequested,
    LlmResponded,
    PlanCreated,
    PlanRevised,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from events.subjects import EVENTS_STREAM, INTAKE_GOAL, INTAKE_STREAM
from services.manifest import Input, ServiceManifest

__all__ = ["MANIFEST"]

MANIFEST = ServiceManifest(
    name="planner",
    inputs=(
        # Validation scales out: every replica takes goal commands and admits or rejects them.
        Input(INTAKE_STREAM, "planner: goal commands", commands=(INTAKE_GOAL,)),
        # Decisions have one writer: the pinned replica, fenced by its lease.
        Input(
            EVENTS_STREAM,
            "planner: admitted goals and the results that move them forward",
            events=(
                GoalAccepted,
                ContextProvided,
                TaskCompleted,
                TaskFailed,
                EvaluationCompleted,
                LlmResponded,  # every LLM answer of a goal counts against its budget
            ),
            pinned=True,
        ),
    ),
    produces=(
        GoalAccepted,
        GoalRejected,
        ContextRequested,
        PlanCreated,
        PlanRevised,
        TaskScheduled,
        EvaluationRequested,
        GoalCompleted,
        GoalFailed,
        LlmRequested,
        LlmResponded,
        LeaseAcquired,
    ),
    live=True,
)
