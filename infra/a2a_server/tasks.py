"""A goal seen as an A2A task, folded from the goal's events. Pure: no I/O.

The task id is the goal id. Its state follows the goal's events:

| the goal's events | the task's state |
|---|---|
| none yet (the command is sent, the planner has not read it) | ``SUBMITTED`` |
| ``goal_accepted`` and everything up to an outcome (paused goals too) | ``WORKING`` |
| an ``approval_requested`` not yet granted or denied | ``INPUT_REQUIRED`` |
| ``goal_completed`` | ``COMPLETED`` |
| ``goal_failed`` | ``FAILED`` |
| ``goal_rejected`` | ``REJECTED`` |
| ``goal_cancelled`` | ``CANCELED`` |

A goal waiting on an approval is ``INPUT_REQUIRED`` (answered with ``agora approve`` /
``agora deny``, docs/approvals.md), and ``WORKING`` again once answered. Each completed step is an
artifact (``step-<iteration>-<task id>``, its output); a completed goal adds ``result``. The
status message is the latest event's line (``type: summary``), or the result or the reason
once the goal has ended. :func:`updates` says what a stream sends for one event, so a
streamed task and a fetched one are the same fold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    GoalAccepted,
    GoalCancelled,
    GoalCompleted,
    GoalFailed,
    GoalRejected,
    TaskCompleted,
)
from events.model import Event
from events.summary import event_line
from infra.a2a_server.messages import A2A_METADATA

__all__ = [
    "TERMINAL_STATES",
    "StepArtifact",
    "TaskRecord",
    "evolve",
    "fold",
    "submitted",
    "to_task",
    "updates",
]

TERMINAL_STATES = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_REJECTED,
        TaskState.TASK_STATE_CANCELED,
    }
)
RESULT_ARTIFACT = "result"
_ENDED: dict[type[Event], TaskState] = {
    GoalFailed: TaskState.TASK_STATE_FAILED,
    GoalRejected: TaskState.TASK_STATE_REJECTED,
    GoalCancelled: TaskState.TASK_STATE_CANCELED,
}


@dataclass(frozen=True, slots=True)
class StepArtifact:
    artifact_id: str
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What the A2A task of one goal says, as of the events folded so far."""

    goal_id: str
    context_id: str
    text: str  # the goal's text: the user's message
    message_id: str  # the message that started it ("" for a goal not sent over A2A)
    state: TaskState
    status_text: str = ""
    status_id: str = ""  # the status message's id: the event it came from
    updated_at: datetime | None = None
    artifacts: tuple[StepArtifact, ...] = ()
    # The goal's approval requests not answered yet, by approval id.
    waiting: frozenset[str] = frozenset()

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def needs_input(self) -> bool:
        """Waiting on a person (an approval): a blocking send returns here."""
        return self.state == TaskState.TASK_STATE_INPUT_REQUIRED


def submitted(goal_id: str, *, context_id: str, text: str, message_id: str) -> TaskRecord:
    """A task whose command was sent and whose goal has no event yet."""
    return TaskRecord(
        goal_id=goal_id,
        context_id=context_id,
        text=text,
        message_id=message_id,
        state=TaskState.TASK_STATE_SUBMITTED,
    )


def _a2a_of(metadata: dict[str, Any]) -> tuple[str, str]:
    said = metadata.get(A2A_METADATA)
    if not isinstance(said, dict):
        return "", ""
    return str(said.get("context_id") or ""), str(said.get("message_id") or "")


def _opened(event: Event) -> TaskRecord:
    """The task as a goal's first event finds it."""
    metadata = event.metadata if isinstance(event, GoalAccepted) else {}
    context_id, message_id = _a2a_of(metadata)
    text = event.text if isinstance(event, GoalAccepted | GoalRejected) else ""
    return submitted(
        event.goal_id, context_id=context_id or event.goal_id, text=text, message_id=message_id
    )


def evolve(record: TaskRecord | None, event: Event) -> TaskRecord:
    """The task after ``event``. ``record`` None: the goal's first event."""
    record = _opened(event) if record is None else record
    if record.finished:  # a late event of an ended goal changes nothing the caller sees
        return record
    moved = replace(record, status_id=event.event_id, updated_at=event.occurred_at)
    if isinstance(event, GoalFailed | GoalRejected | GoalCancelled):
        return replace(moved, state=_ENDED[type(event)], status_text=event.reason)
    artifacts = moved.artifacts
    if isinstance(event, GoalCompleted):
        done = StepArtifact(RESULT_ARTIFACT, "result", event.result)
        return replace(
            moved,
            state=TaskState.TASK_STATE_COMPLETED,
            status_text=event.result,
            artifacts=(*artifacts, done),
        )
    if isinstance(event, TaskCompleted):
        name = f"step {event.task_id}"
        step = StepArtifact(f"step-{event.iteration}-{event.task_id}", name, event.output)
        artifacts = (*artifacts, step)
    waiting = moved.waiting
    if isinstance(event, ApprovalRequested):
        waiting = waiting | {event.approval_id}
    elif isinstance(event, ApprovalGranted | ApprovalDenied):
        waiting = waiting - {event.approval_id}
    return replace(
        moved,
        state=TaskState.TASK_STATE_INPUT_REQUIRED if waiting else TaskState.TASK_STATE_WORKING,
        status_text=event_line(event),
        artifacts=artifacts,
        waiting=waiting,
    )


def fold(events: Iterable[Event]) -> TaskRecord | None:
    """The task of a goal from its events in stream order; None when there are none."""
    record: TaskRecord | None = None
    for event in events:
        record = evolve(record, event)
    return record


def updates(
    before: TaskRecord, after: TaskRecord
) -> list[TaskStatusUpdateEvent | TaskArtifactUpdateEvent]:
    """What a stream sends when one event turned ``before`` into ``after``: the artifacts
    it added, then the status (the last one, when the task has ended)."""
    sent: list[TaskStatusUpdateEvent | TaskArtifactUpdateEvent] = [
        TaskArtifactUpdateEvent(
            task_id=after.goal_id,
            context_id=after.context_id,
            artifact=_artifact(artifact),
            last_chunk=True,
        )
        for artifact in after.artifacts[len(before.artifacts) :]
    ]
    if after.status_id != before.status_id:
        sent.append(
            TaskStatusUpdateEvent(
                task_id=after.goal_id, context_id=after.context_id, status=_status(after)
            )
        )
    return sent


def to_task(record: TaskRecord, *, history_length: int | None = None) -> Task:
    """The A2A task: its status, its artifacts, and the message that started it."""
    history: Sequence[Message] = ()
    if record.text and history_length != 0:
        user = Message(
            message_id=record.message_id or f"{record.goal_id}-text",
            context_id=record.context_id,
            task_id=record.goal_id,
            role=Role.ROLE_USER,
            parts=[Part(text=record.text)],
        )
        history = (user,)
    return Task(
        id=record.goal_id,
        context_id=record.context_id,
        status=_status(record),
        artifacts=[_artifact(a) for a in record.artifacts],
        history=history,
    )


def _status(record: TaskRecord) -> TaskStatus:
    status = TaskStatus(state=record.state)
    if record.status_text:
        status.message.CopyFrom(
            Message(
                message_id=record.status_id or f"{record.goal_id}-status",
                context_id=record.context_id,
                task_id=record.goal_id,
                role=Role.ROLE_AGENT,
                parts=[Part(text=record.status_text)],
            )
        )
    if record.updated_at is not None:
        status.timestamp.FromDatetime(record.updated_at)
    return status


def _artifact(artifact: StepArtifact) -> Artifact:
    return Artifact(
        artifact_id=artifact.artifact_id, name=artifact.name, parts=[Part(text=artifact.text)]
    )
