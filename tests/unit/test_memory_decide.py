"""Memory decisions: given events -> when observed / asked -> then events."""

from __future__ import annotations

from datetime import UTC, datetime

from events.catalog import ContextProvided, ContextRequested, MemoryStored, TaskCompleted
from events.codec import decode_event, encode
from events.model import Stamp, event_type
from services.memory.decide import observe, provide_context
from services.memory.index import MemoryIndex

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


def observe_at(event: TaskCompleted, now: datetime = NOW) -> list[MemoryStored]:
    return observe(event, Stamp.caused_by(event, producer=PRODUCER, now=now))


def answer(index: MemoryIndex, request: ContextRequested, now: datetime = NOW) -> ContextProvided:
    return provide_context(index, request, Stamp.caused_by(request, producer=PRODUCER, now=now))


def index_of(*completed: TaskCompleted) -> MemoryIndex:
    index = MemoryIndex()
    for event in completed:
        for memory in observe_at(event):
            index.add(memory)
    return index


def test_a_completed_task_becomes_one_observation() -> None:
    cause = task_completed()

    [memory] = observe_at(cause)

    assert event_type(memory) == "memory_stored"
    assert memory.key == "g-1/2/s1"
    assert memory.text == "calculator -> 391"
    assert memory.kind == "observation"
    assert memory.source_event_id == "tc-1"
    assert memory.goal_id == "g-1"
    assert memory.causation_id == "tc-1"
    assert memory.correlation_id == "corr-g-1"
    assert memory.producer == PRODUCER
    assert memory.occurred_at == NOW


def test_a_long_output_is_trimmed_to_2000_characters() -> None:
    [memory] = observe_at(task_completed(output="x" * 5000))

    assert memory.text == "calculator -> " + "x" * 2000


def test_observing_the_same_event_again_gives_the_same_event_id() -> None:
    cause = task_completed()

    [first] = observe_at(cause, NOW)
    [again] = observe_at(cause, LATER)

    assert again.event_id == first.event_id


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
