"""Evaluator: given an evaluation_requested event -> when evaluated -> then its verdict."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.catalog import EvaluationCompleted, EvaluationRequested
from events.codec import decode_event, encode
from events.model import Check, Expect, Stamp, TaskOutcome, event_type
from services.evaluator.decide import evaluate

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PRODUCER = "evaluator@0.1.0"

DONE = TaskOutcome(task_id="s1", tool="calculator", status="completed", output="391")


def requested(
    *,
    result: str = "391",
    expect: Expect | None = None,
    tasks: tuple[TaskOutcome, ...] = (DONE,),
    event_id: str = "er-1",
) -> EvaluationRequested:
    return EvaluationRequested(
        event_id=event_id,
        goal_id="g-1",
        occurred_at=NOW,
        causation_id="tc-1",
        correlation_id="corr-g-1",
        producer="planner@0.1.0",
        iteration=2,
        text="compute 17*23",
        expect=expect,
        result=result,
        tasks=tasks,
    )


def evaluated(request: EvaluationRequested, now: datetime = NOW) -> EvaluationCompleted:
    return evaluate(request, Stamp.caused_by(request, producer=PRODUCER, now=now))


def check_named(completed: EvaluationCompleted, name: str) -> Check:
    [check] = [check for check in completed.checks if check.name == name]
    return check


def test_completed_tasks_without_expectations_are_accepted() -> None:
    completed = evaluated(requested())

    assert event_type(completed) == "evaluation_completed"
    assert completed.verdict == "accept"
    assert completed.score == 1.0
    assert completed.feedback == "all checks passed"
    assert [check.name for check in completed.checks] == ["tasks_succeeded"]
    assert completed.request_id == "er-1"
    assert completed.iteration == 2
    assert completed.goal_id == "g-1"
    assert completed.causation_id == "er-1"
    assert completed.correlation_id == "corr-g-1"


def test_no_tasks_at_all_counts_as_succeeded() -> None:
    completed = evaluated(requested(tasks=()))

    assert completed.verdict == "accept"


def test_a_failed_task_asks_for_a_revision_naming_the_task_and_its_error() -> None:
    failed = TaskOutcome(task_id="s2", tool="sleep", status="failed", error="timed out after 1s")

    completed = evaluated(requested(tasks=(DONE, failed)))

    assert completed.verdict == "revise"
    assert completed.score == 0.0
    assert completed.feedback == "task s2 failed: timed out after 1s"
    assert check_named(completed, "tasks_succeeded").passed is False


def test_failed_and_skipped_tasks_are_all_named() -> None:
    failed = TaskOutcome(task_id="s2", tool="http_get", status="failed", error="HTTP 503")
    skipped = TaskOutcome(task_id="s3", tool="echo", status="skipped")

    completed = evaluated(requested(tasks=(failed, DONE, skipped)))

    assert check_named(completed, "tasks_succeeded").detail == (
        "task s2 failed: HTTP 503, task s3 skipped"
    )


@pytest.mark.parametrize(
    ("contains", "passed"),
    [
        ("391", True),
        ("392", False),
        (("39", "91"), True),
        (("39", "nope"), False),
    ],
)
def test_contains_checks_every_expected_substring(
    contains: str | tuple[str, ...], passed: bool
) -> None:
    completed = evaluated(requested(result="17*23 = 391", expect=Expect(contains=contains)))

    assert check_named(completed, "contains").passed is passed
    assert completed.verdict == ("accept" if passed else "revise")


def test_contains_feedback_names_only_the_missing_substrings() -> None:
    completed = evaluated(requested(result="391", expect=Expect(contains=("391", "ok", "done"))))

    assert completed.feedback == "result does not contain 'ok', 'done'"


def test_equals_ignores_surrounding_whitespace() -> None:
    completed = evaluated(requested(result="  391\n", expect=Expect(equals="391 ")))

    assert check_named(completed, "equals").passed is True
    assert completed.verdict == "accept"


def test_equals_fails_on_a_different_result() -> None:
    completed = evaluated(requested(result="390", expect=Expect(equals="391")))

    assert check_named(completed, "equals").passed is False
    assert completed.feedback == "result '390' does not equal '391'"


def test_matches_searches_the_regex_anywhere_in_the_result() -> None:
    completed = evaluated(requested(result="answer: 391.", expect=Expect(matches=r"\b3\d1\b")))

    assert check_named(completed, "matches").passed is True


def test_matches_fails_when_the_regex_is_not_found() -> None:
    completed = evaluated(requested(result="391", expect=Expect(matches=r"^\d{4}$")))

    assert check_named(completed, "matches").passed is False
    assert completed.feedback == r"result does not match '^\d{4}$'"


def test_an_invalid_regex_is_a_failed_check_not_an_exception() -> None:
    completed = evaluated(requested(expect=Expect(matches="(unclosed")))

    check = check_named(completed, "matches")
    assert check.passed is False
    assert check.detail.startswith("invalid regex '(unclosed': ")
    assert "missing )" in check.detail
    assert completed.verdict == "revise"


def test_score_is_the_share_of_passed_checks_and_feedback_lists_each_failure() -> None:
    failed = TaskOutcome(task_id="s2", tool="sleep", status="failed", error="timed out after 1s")

    completed = evaluated(
        requested(
            result="390",
            tasks=(DONE, failed),
            expect=Expect(contains="391", equals="390", matches="39"),
        )
    )

    assert [check.name for check in completed.checks] == [
        "tasks_succeeded",
        "contains",
        "equals",
        "matches",
    ]
    assert completed.score == 0.5
    assert completed.verdict == "revise"
    assert completed.feedback == "task s2 failed: timed out after 1s; result does not contain '391'"


def test_score_is_rounded_to_three_places() -> None:
    completed = evaluated(requested(result="391", expect=Expect(contains="391", equals="392")))

    assert completed.score == 0.667


def test_a_long_result_is_quoted_shortened_in_feedback() -> None:
    completed = evaluated(requested(result="y" * 5000, expect=Expect(equals="391")))

    assert len(completed.feedback) < 300
    assert "…" in completed.feedback


def test_the_same_request_always_gets_the_same_event_id() -> None:
    request = requested()

    first = evaluated(request, NOW)
    again = evaluated(request, datetime(2024, 5, 2, tzinfo=UTC))

    assert again.event_id == first.event_id
    assert evaluated(requested(event_id="er-2")).event_id != first.event_id


def test_a_verdict_survives_the_codec() -> None:
    completed = evaluated(requested(expect=Expect(contains=("3", "9"), matches="(")))

    assert decode_event(encode(completed)) == completed
