"""The planner's inputs and outputs (see services/manifest.py)."""

from __future__ import annotations

from events.catalog import (
    ApprovalAnswered,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    CancelRequested,
    CommandRejected,
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCancelled,
    GoalCompleted,
    GoalDequeued,
    GoalFailed,
    GoalPaused,
    GoalQueued,
    GoalRejected,
    GoalResumed,
    IterationInterrupted,
    LeaseAcquired,
    LlmRequested,
    LlmResponded,
    MessageQueued,
    MessageReceived,
    MessageRejected,
    PauseRequested,
    PlanCreated,
    PlanRevised,
    ResumeRequested,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    ToolsListed,
)
from events.control_commands import CONTROL_SUBJECTS
from events.subjects import (
    EVENTS_STREAM,
    INTAKE_APPROVAL,
    INTAKE_DEADLINE_PREFIX,
    INTAKE_GOAL,
    INTAKE_MESSAGE,
    INTAKE_STREAM,
)
from services.manifest import Input, ServiceManifest

__all__ = ["MANIFEST"]

MANIFEST = ServiceManifest(
    name="planner",
    inputs=(
        # Validation scales out: every replica takes goal commands and admits or rejects them,
        # and records steering commands (cancel, pause, resume) as requests on their goal,
        # and answers to approval requests and messages for running goals likewise.
        Input(
            INTAKE_STREAM,
            "planner: goal commands, cancel/pause/resume, approval answers, messages",
            commands=(INTAKE_GOAL, *CONTROL_SUBJECTS, INTAKE_APPROVAL, INTAKE_MESSAGE),
        ),
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
                CancelRequested,  # steering requests, answered by the active planner alone
                PauseRequested,
                ResumeRequested,
                ApprovalAnswered,  # answered by the active planner alone, like steering
                MessageReceived,  # answered by the active planner alone, like steering
                # Its own, and the executor's for a ReAct step's call: the deadline's
                # scheduled deny is stored from it.
                ApprovalRequested,
                GoalDequeued,  # its own: a goal that waited is planned in its own lane
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
        CancelRequested,
        PauseRequested,
        ResumeRequested,
        GoalCancelled,
        GoalPaused,
        GoalResumed,
        CommandRejected,
        ApprovalRequested,
        ApprovalAnswered,
        ApprovalGranted,
        ApprovalDenied,
        ApprovalRejected,
        GoalQueued,
        GoalDequeued,
        MessageReceived,
        MessageQueued,
        IterationInterrupted,
        MessageRejected,
        # A plain task that waited for approval when its goal was cancelled or its iteration
        # interrupted: no executor holds it, so the planner ends it.
        TaskCancelled,
    ),
    # The deny of an approval's deadline, scheduled on the intake stream (and, when the
    # deadline already passed, the answer itself).
    schedules=(f"{INTAKE_DEADLINE_PREFIX}>", INTAKE_APPROVAL),
    # Every replica keeps the tool catalogue: the MCP tools the executor lists.
    follows=(ToolsListed,),
    live=True,
)
