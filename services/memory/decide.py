"""The memory service's decisions: what to remember, what context to hand back, what to
forget, and when a goal's working memory is compacted. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from events.catalog import (
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    GoalAccepted,
    GoalCompleted,
    MemoryCompacted,
    MemoryForgotten,
    MemoryStored,
    TaskCompleted,
)
from events.memory_commands import ForgetCommand
from events.model import Event, Stamp
from events.subjects import is_subject_token
from services.memory.longterm import LongTermMemory
from services.memory.working import CHARS_PER_TOKEN, CompactionPlan

__all__ = [
    "LESSON_IMPORTANCE",
    "MAX_OBSERVATION_OUTPUT_CHARS",
    "UNATTRIBUTED_GOAL",
    "compaction",
    "forget",
    "learn_lessons",
    "observation_of",
    "provide_context",
]

# Long tool outputs (a fetched page, a file) would dominate the index and bloat every
# context_provided event that quotes them; the beginning is what later plans need.
MAX_OBSERVATION_OUTPUT_CHARS = 2000
LESSON_IMPORTANCE = 0.8
# The goal id of a memory_forgotten whose key belongs to no goal memory knows of.
UNATTRIBUTED_GOAL = "_memory"


def observation_of(event: TaskCompleted) -> MemoryStored:
    """What memory learns from one completed task: a single observation, with provenance.

    Not published: memory indexes ``task_completed`` itself. The value is the one an older
    memory published as ``memory_stored`` for the same task (same id, key and text), so a log
    holding both folds into one item. Its time is the task's, so every replica agrees.
    """
    output = event.output[:MAX_OBSERVATION_OUTPUT_CHARS]
    stamp = Stamp(
        producer="memory",
        goal_id=event.goal_id,
        occurred_at=event.occurred_at,
        causation_id=event.event_id,
        correlation_id=event.correlation_id,
    )
    return MemoryStored(
        **stamp.envelope("memory_stored", "memory", event.event_id),
        key=f"{event.goal_id}/{event.iteration}/{event.task_id}",
        text=f"{event.tool} -> {output}",
        kind="observation",
        source_event_id=event.event_id,
    )


def learn_lessons(
    history: Sequence[Event], completed: GoalCompleted, stamp: Stamp
) -> list[MemoryStored]:
    """A goal that succeeded after revisions teaches what the evaluator asked to change.

    One lesson per ``revise`` verdict before the accepted iteration, with that verdict as
    its source and the goal's metadata as the lesson's.
    """
    if completed.iterations <= 1:
        return []
    goal = next((e for e in history if isinstance(e, GoalAccepted)), None)
    goal_text = " ".join(goal.text.split())[:200] if goal else completed.goal_id
    revisions = [
        e
        for e in history
        if isinstance(e, EvaluationCompleted)
        and e.verdict == "revise"
        and e.iteration < completed.iterations
    ]
    return [
        MemoryStored(
            **stamp.envelope("memory_stored", "lesson", verdict.iteration),
            key=f"{completed.goal_id}/lesson/{verdict.iteration}",
            text=(
                f'lesson from "{goal_text}": {verdict.feedback} '
                f"(revised after iteration {verdict.iteration}, then accepted)"
            ),
            kind="lesson",
            source_event_id=verdict.event_id,
            importance=LESSON_IMPORTANCE,
            metadata=dict(goal.metadata) if goal else {},
        )
        for verdict in revisions
    ]


def provide_context(
    memory: LongTermMemory,
    request: ContextRequested,
    stamp: Stamp,
    *,
    dense: Sequence[int] | None = None,
) -> ContextProvided:
    """Answer a context request with the best matches from every goal, with provenance.

    Recency is measured at the request's own time, so the answer replays identically.
    """
    return ContextProvided(
        **stamp.envelope("context_provided", "context", request.event_id),
        request_id=request.event_id,
        iteration=request.iteration,
        items=tuple(memory.search(request.query, request.k, now=request.occurred_at, dense=dense)),
    )


def forget(memory: LongTermMemory, command: ForgetCommand, stamp: Stamp) -> MemoryForgotten:
    """Turn a validated forget command into the event that makes it so.

    ``stamp.goal_id`` is ignored: the event belongs to the goal the item came from (the
    goal named by the command, the key's first segment, or ``UNATTRIBUTED_GOAL``).
    """
    if command.goal_id is not None:
        goal_id, key, digest = command.goal_id, "", ""
    else:
        assert command.key is not None
        key = command.key
        item = memory.lookup(key)
        prefix = key.split("/", 1)[0]
        known_goal = prefix if is_subject_token(prefix) else UNATTRIBUTED_GOAL
        goal_id = item.goal_id if item else known_goal
        digest = item.content_hash if item else ""
    envelope = {
        **stamp.envelope("memory_forgotten", command.command_id, key, goal_id),
        "goal_id": goal_id,
        "correlation_id": goal_id,
    }
    return MemoryForgotten(
        **envelope,
        command_id=command.command_id,
        key=key,
        content_hash=digest,
        reason=command.reason,
    )


def compaction(
    plan: CompactionPlan, summary: str, method: str, budget: int, stamp: Stamp
) -> MemoryCompacted:
    """Record a compaction of ``stamp.goal_id``'s working memory. ``summary`` is cut to the
    plan's summary budget, so the goal ends within its budget whatever wrote the summary."""
    summary = summary[: plan.summary_budget * CHARS_PER_TOKEN]
    return MemoryCompacted(
        **stamp.envelope("memory_compacted", "compact", plan.through_ordinal),
        through_ordinal=plan.through_ordinal,
        observations=len(plan.texts),
        summary=summary,
        method=method,
        tokens_before=plan.tokens_before,
        tokens_after=plan.tokens_after(summary),
        budget=budget,
    )
