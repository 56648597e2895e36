"""Memory decisions: given events -> when observed / asked -> then events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.catalog import (
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    GoalAccepted,
    GoalCompleted,
    MemoryStored,
    TaskCompleted,
)
from events.codec import decode_event, encode
from events.errors import DecodeError
from events.ids import derive_id
from events.memory_commands import ForgetCommand, parse_forget_command
from events.model import Stamp, event_type
from services.memory.decide import (
    UNATTRIBUTED_GOAL,
    forget,
    learn_lessons,
    observation_of,
    provide_context,
)
from services.memory.longterm import LongTermMemory as MemoryIndex
from services.memory.longterm import content_hash

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
PRODUCER = "memory@0.1.0"


def task_completed(
    *, event_id: str = "tc-1", goal_id: str = "g-1", task_id: str = "s1", output: str = "391"
) -> TaskCompleted:
    return TaskCompleted(
        event_id=event_id,
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id="ts-1",
        correlation_id=f"corr-{goal_id}",
        producer="executor@0.1.0",
        iteration=2,
        task_id=task_id,
        tool="calculator",
        output=output,
        attempts=1,
        duration_ms=3.0,
    )


def context_requested(
    *, event_id: str = "cr-1", goal_id: str = "g-2", query: str = "calculator", k: int = 5
) -> ContextRequested:
    return ContextRequested(
        event_id=event_id,
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id="ga-1",
        correlation_id=f"corr-{goal_id}",
        producer="planner@0.1.0",
        iteration=1,
        query=query,
        k=k,
    )


def observe_at(event: TaskCompleted) -> list[MemoryStored]:
    return [observation_of(event)]


def answer(index: MemoryIndex, request: ContextRequested, now: datetime = NOW) -> ContextProvided:
    return provide_context(index, request, Stamp.caused_by(request, producer=PRODUCER, now=now))


def index_of(*completed: TaskCompleted) -> MemoryIndex:
    index = MemoryIndex()
    for event in completed:
        for memory in observe_at(event):
            index.store(memory)
    return index


def test_a_completed_task_becomes_one_observation() -> None:
    cause = task_completed()
    event_time = cause.occurred_at

    [memory] = observe_at(cause)

    assert event_type(memory) == "memory_stored"
    assert memory.key == "g-1/2/s1"
    assert memory.text == "calculator -> 391"
    assert memory.kind == "observation"
    assert memory.source_event_id == "tc-1"
    assert memory.goal_id == "g-1"
    assert memory.causation_id == "tc-1"
    assert memory.correlation_id == "corr-g-1"
    assert memory.occurred_at == event_time  # the task's time: every replica agrees


def test_a_long_output_is_trimmed_to_2000_characters() -> None:
    [memory] = observe_at(task_completed(output="x" * 5000))

    assert memory.text == "calculator -> " + "x" * 2000


def test_observing_the_same_event_again_gives_the_same_observation() -> None:
    cause = task_completed()

    assert observe_at(cause) == observe_at(cause)


def test_the_observation_is_the_one_older_memories_published_for_the_task() -> None:
    cause = task_completed()
    [memory] = observe_at(cause)
    # An older memory published it as memory_stored with this id: a log holding both folds once.
    older = derive_id("memory", cause.goal_id, "memory_stored", "memory", cause.event_id)
    assert memory.event_id == older


def test_different_completed_tasks_give_different_event_ids() -> None:
    [first] = observe_at(task_completed(event_id="tc-1", task_id="s1"))
    [second] = observe_at(task_completed(event_id="tc-2", task_id="s2"))

    assert first.event_id != second.event_id


def test_an_observation_survives_the_codec() -> None:
    [memory] = observe_at(task_completed())

    assert decode_event(encode(memory)) == memory


def test_context_answers_with_the_best_matches_from_every_goal() -> None:
    index = index_of(
        task_completed(event_id="tc-1", goal_id="g-1", task_id="s1", output="391"),
        task_completed(event_id="tc-2", goal_id="g-2", task_id="s1", output="weather sunny"),
    )
    request = context_requested(goal_id="g-2", query="weather today")

    provided = answer(index, request)

    assert event_type(provided) == "context_provided"
    assert provided.request_id == "cr-1"
    assert provided.iteration == 1
    assert provided.goal_id == "g-2"
    assert provided.causation_id == "cr-1"
    assert [item.key for item in provided.items] == ["g-2/2/s1"]
    assert provided.items[0].source_event_id == "tc-2"


def test_context_is_limited_to_k_items() -> None:
    index = index_of(
        *(task_completed(event_id=f"tc-{n}", task_id=f"s{n}", output=f"{n}") for n in range(4))
    )

    provided = answer(index, context_requested(query="calculator", k=2))

    assert [item.key for item in provided.items] == ["g-1/2/s3", "g-1/2/s2"]


def test_context_from_an_empty_index_is_empty() -> None:
    provided = answer(MemoryIndex(), context_requested())

    assert provided.items == ()


def test_answering_the_same_request_again_gives_the_same_event_id() -> None:
    request = context_requested()

    first = answer(MemoryIndex(), request, NOW)
    again = answer(index_of(task_completed()), request, LATER)

    assert again.event_id == first.event_id
    assert answer(MemoryIndex(), context_requested(event_id="cr-2")).event_id != first.event_id


# -- lessons, forgetting --------------------------------------------------------------------


def _envelope(event_id: str, goal_id: str = "g-5") -> dict[str, object]:
    return {
        "event_id": event_id,
        "goal_id": goal_id,
        "occurred_at": NOW,
        "causation_id": None,
        "correlation_id": goal_id,
        "producer": "planner@0.1.0",
    }


def test_a_goal_accepted_after_a_revision_teaches_the_evaluators_feedback() -> None:
    history = [
        GoalAccepted(**_envelope("ga"), command_id="c", text="deploy  alpha", metadata={"t": 1}),
        EvaluationCompleted(
            **_envelope("ev-1"),
            request_id="r1",
            iteration=1,
            verdict="revise",
            score=0.2,
            feedback="result must mention the version",
        ),
        EvaluationCompleted(
            **_envelope("ev-2"),
            request_id="r2",
            iteration=2,
            verdict="accept",
            score=1.0,
            feedback="ok",
        ),
    ]
    completed = GoalCompleted(**_envelope("gc"), result="v2 deployed", iterations=2, score=1.0)
    stamp = Stamp.caused_by(completed, producer=PRODUCER, now=NOW)

    [lesson] = learn_lessons(history, completed, stamp)

    assert lesson.kind == "lesson"
    assert lesson.key == "g-5/lesson/1"
    assert lesson.source_event_id == "ev-1"
    assert "result must mention the version" in lesson.text
    assert '"deploy alpha"' in lesson.text
    assert lesson.metadata == {"t": 1}
    assert learn_lessons(history, completed, stamp)[0].event_id == lesson.event_id


def test_a_goal_accepted_at_once_teaches_no_lesson() -> None:
    completed = GoalCompleted(**_envelope("gc"), result="r", iterations=1, score=1.0)

    assert (
        learn_lessons([], completed, Stamp.caused_by(completed, producer=PRODUCER, now=NOW)) == []
    )


def _forget_stamp() -> Stamp:
    return Stamp(
        producer=PRODUCER,
        goal_id="_memory",
        occurred_at=NOW,
        causation_id=None,
        correlation_id="_memory",
    )


def test_forgetting_a_known_key_belongs_to_its_goal_and_names_its_text() -> None:
    index = index_of(task_completed(goal_id="g-1", output="secret"))
    command = ForgetCommand(command_id="c-9", key="g-1/2/s1", reason="leaked")

    event = forget(index, command, _forget_stamp())

    assert (event.goal_id, event.key, event.reason) == ("g-1", "g-1/2/s1", "leaked")
    assert event.content_hash == content_hash("calculator -> secret")
    assert forget(index, command, _forget_stamp()).event_id == event.event_id


def test_forgetting_an_unknown_key_or_a_goal() -> None:
    unknown = forget(MemoryIndex(), ForgetCommand(command_id="c", key="g-4/1/s1"), _forget_stamp())
    odd = forget(MemoryIndex(), ForgetCommand(command_id="c", key="no goal.here"), _forget_stamp())
    goal = forget(MemoryIndex(), ForgetCommand(command_id="c", goal_id="g-7"), _forget_stamp())

    assert (unknown.goal_id, unknown.content_hash) == ("g-4", "")
    assert odd.goal_id == UNATTRIBUTED_GOAL
    assert (goal.goal_id, goal.key) == ("g-7", "")


def test_a_forget_command_names_exactly_one_of_key_or_goal() -> None:
    for bad in (
        b"{}",
        b'{"command_id": "c"}',
        b'{"command_id": "c", "key": "k", "goal_id": "g"}',
        b'{"command_id": "c", "goal_id": "a.b"}',
        b"not json",
        b'{"command_id": "c", "kee": "k"}',
    ):
        with pytest.raises(DecodeError):
            parse_forget_command(bad)

    assert parse_forget_command(b'{"command_id": "c", "key": "k"}').key == "k"
