"""Large outputs -> stored apart once, events carry references -> values come back unchanged;
old inline events read as before; a decision that cannot be written fails the goal."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgspec
import pytest

from events.catalog import EvaluationRequested, GoalCompleted, GoalFailed, TaskCompleted
from events.codec import decode_event, encode
from events.errors import ConfigurationError, EventTooLargeError
from events.model import Stamp, TaskOutcome
from events.outputs import (
    PREVIEW_CHARS,
    externalize,
    internalize,
    may_hold_refs,
    refs_of,
)
from infra.settings import Settings
from tests.unit.test_planner_loop import GOAL, ORDERED, PlannerHarness

BUCKET = "AGORA_OUTPUTS"
LIMIT = 32 * 1024
BIG = "x" * 60_000 + "end"
STAMP = Stamp("executor@test", "g-1", datetime(2026, 12, 1, tzinfo=UTC), "cause", "g-1")


def _completed(output: str, task_id: str = "a") -> TaskCompleted:
    return TaskCompleted(
        **STAMP.envelope("task_completed", task_id),
        iteration=1,
        task_id=task_id,
        tool="echo",
        output=output,
        attempts=1,
        duration_ms=1.0,
    )


def _evaluation(outputs: list[str], result: str) -> EvaluationRequested:
    return EvaluationRequested(
        **STAMP.envelope("evaluation_requested", 1),
        iteration=1,
        text="t",
        expect=None,
        result=result,
        tasks=tuple(
            TaskOutcome(task_id=f"t{n}", tool="echo", status="completed", output=output)
            for n, output in enumerate(outputs)
        ),
    )


def test_an_output_under_the_threshold_stays_inline() -> None:
    event = _completed("391")

    small, blobs = externalize(event, bucket=BUCKET, threshold=LIMIT)

    assert small is event
    assert blobs == ()
    assert not may_hold_refs(encode(small))


def test_a_large_output_becomes_a_reference_with_its_digest_size_and_preview() -> None:
    small, blobs = externalize(_completed(BIG), bucket=BUCKET, threshold=LIMIT)

    assert isinstance(small, TaskCompleted)
    ref = small.output_ref
    assert ref is not None
    digest = hashlib.sha256(BIG.encode()).hexdigest()
    assert (ref.bucket, ref.name, ref.sha256, ref.size) == (BUCKET, digest, digest, len(BIG))
    assert small.output == ref.preview == BIG[:PREVIEW_CHARS]
    assert [(b.name, b.data) for b in blobs] == [(digest, BIG.encode())]
    assert len(encode(small)) < 1024
    assert may_hold_refs(encode(small))


def test_resolving_a_reference_gives_back_the_event_as_written_inline() -> None:
    event = _evaluation([BIG, "small"], result=BIG + "\nsmall")
    small, blobs = externalize(event, bucket=BUCKET, threshold=LIMIT)
    values = {blob.name: blob.data.decode() for blob in blobs}

    assert internalize(small, values) == event
    assert internalize(small, {}) == small  # nothing known: the references stay


def test_an_evaluation_of_many_copies_stores_each_content_once() -> None:
    event = _evaluation([BIG] * 11, result="\n".join([BIG] * 10))

    small, blobs = externalize(event, bucket=BUCKET, threshold=LIMIT)

    assert len(blobs) == 2  # the output, and the joined result
    assert len(refs_of(small)) == 12
    assert len(encode(small)) < 16 * 1024


def test_storing_again_after_a_crash_names_the_same_blobs_and_writes_the_same_bytes() -> None:
    event = _evaluation([BIG], result=BIG)

    first, first_blobs = externalize(event, bucket=BUCKET, threshold=LIMIT)
    again, again_blobs = externalize(event, bucket=BUCKET, threshold=LIMIT)

    assert encode(first) == encode(again)  # same event id, same bytes: a duplicate
    assert first_blobs == again_blobs


def test_an_event_written_before_references_reads_with_none() -> None:
    inline = msgspec.json.decode(encode(_completed("391")))
    del inline["output_ref"]
    old = decode_event(msgspec.json.encode(inline))

    assert isinstance(old, TaskCompleted)
    assert old.output_ref is None
    assert refs_of(old) == ()


def test_a_goal_result_is_stored_apart_too() -> None:
    result = GoalCompleted(
        **STAMP.envelope("goal_completed", "outcome"), result=BIG, iterations=1, score=1.0
    )

    small, blobs = externalize(result, bucket=BUCKET, threshold=LIMIT)

    assert isinstance(small, GoalCompleted)
    assert small.result_ref is not None
    assert internalize(small, {b.name: b.data.decode() for b in blobs}) == result


def test_a_decision_too_large_to_write_fails_the_goal_with_the_reason() -> None:
    harness = PlannerHarness(ORDERED)
    harness.accept()
    harness.store.fail_next_append = EventTooLargeError("task_scheduled", 2_000_000, 1_048_064)

    harness.completed("s1", "391")

    outcome = harness.log[-1]
    assert isinstance(outcome, GoalFailed)
    assert outcome.goal_id == GOAL
    assert "task_scheduled of 2,000,000 bytes is too large to record" in outcome.reason


def test_the_inline_threshold_is_a_checked_setting() -> None:
    assert Settings.from_env({"AGORA_OUTPUT_INLINE_BYTES": "16384"}).output_inline_bytes == 16384
    with pytest.raises(ConfigurationError, match="AGORA_OUTPUT_INLINE_BYTES"):
        Settings.from_env({"AGORA_OUTPUT_INLINE_BYTES": "0"})


@pytest.mark.parametrize("char", ["x", "é", "€", "😀", '"', "\\", "\n", "\x00"])
def test_an_output_over_the_threshold_makes_its_event_encode_larger_still(char: str) -> None:
    # The publisher offloads only events that encode to more than the threshold: that skips
    # no event holding an output over it, whatever characters the output is made of.
    threshold = 1024
    output = char * (threshold // len(char.encode()) + 1)
    assert len(output.encode()) > threshold
    small, blobs = externalize(_completed(output), bucket=BUCKET, threshold=threshold)
    assert blobs
    assert small.output_ref is not None
    assert len(encode(_completed(output))) > threshold
