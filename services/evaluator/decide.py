"""The evaluator's rule-based verdict on one iteration. Pure.

Every input the verdict depends on is in the ``evaluation_requested`` event, so replaying it
yields the same ``evaluation_completed`` event, byte for byte.
"""

from __future__ import annotations

from events.catalog import EvaluationCompleted, EvaluationRequested
from events.linear_regex import PatternError, compile_user_pattern
from events.model import Check, Expect, Stamp, TaskOutcome

__all__ = [
    "ALL_PASSED_FEEDBACK",
    "check_contains",
    "check_equals",
    "check_expectations",
    "check_matches",
    "check_tasks_succeeded",
    "evaluate",
    "rule_checks",
    "rule_score",
    "verdict_of",
]

ALL_PASSED_FEEDBACK = "all checks passed"

# Results can be long; details quote at most this much so feedback stays readable.
_QUOTE_LIMIT = 200


def evaluate(request: EvaluationRequested, stamp: Stamp) -> EvaluationCompleted:
    """Run every applicable check: accept iff all pass, otherwise ask for a revision."""
    checks = rule_checks(request)
    return verdict_of(request, checks, stamp, score=rule_score(checks))


def rule_checks(request: EvaluationRequested) -> tuple[Check, ...]:
    """The rule checks: every task completed, then the goal's expectations."""
    return (
        check_tasks_succeeded(request.tasks),
        *check_expectations(request.expect, request.result),
    )


def rule_score(checks: tuple[Check, ...]) -> float:
    """The fraction of ``checks`` that passed."""
    return sum(check.passed for check in checks) / len(checks)


def verdict_of(
    request: EvaluationRequested,
    checks: tuple[Check, ...],
    stamp: Stamp,
    *,
    score: float,
    accepted_feedback: str = ALL_PASSED_FEEDBACK,
) -> EvaluationCompleted:
    """Accept iff every check passed; the feedback of a revision lists what failed."""
    failed = [check for check in checks if not check.passed]
    return EvaluationCompleted(
        **stamp.envelope("evaluation_completed", "evaluation", request.event_id),
        request_id=request.event_id,
        iteration=request.iteration,
        verdict="revise" if failed else "accept",
        score=round(score, 3),
        feedback="; ".join(check.detail for check in failed) or accepted_feedback,
        checks=checks,
    )


def check_tasks_succeeded(tasks: tuple[TaskOutcome, ...]) -> Check:
    unfinished = [task for task in tasks if task.status != "completed"]
    if not unfinished:
        return Check(
            name="tasks_succeeded",
            passed=True,
            detail=f"{len(tasks)} of {len(tasks)} tasks completed",
        )
    return Check(
        name="tasks_succeeded",
        passed=False,
        detail=", ".join(_describe_unfinished(task) for task in unfinished),
    )


def check_expectations(expect: Expect | None, result: str) -> tuple[Check, ...]:
    """One check per expectation the goal set, in a fixed order: contains, equals, matches."""
    if expect is None:
        return ()
    checks: list[Check] = []
    if expect.contains is not None:
        checks.append(check_contains(expect.contains, result))
    if expect.equals is not None:
        checks.append(check_equals(expect.equals, result))
    if expect.matches is not None:
        checks.append(check_matches(expect.matches, result))
    return tuple(checks)


def check_contains(expected: str | tuple[str, ...], result: str) -> Check:
    wanted = (expected,) if isinstance(expected, str) else expected
    missing = [text for text in wanted if text not in result]
    if not missing:
        return Check(name="contains", passed=True, detail=f"result contains {_quote_all(wanted)}")
    return Check(
        name="contains", passed=False, detail=f"result does not contain {_quote_all(missing)}"
    )


def check_equals(expected: str, result: str) -> Check:
    # Surrounding whitespace (a trailing newline from a tool) is not a meaningful difference.
    if result.strip() == expected.strip():
        return Check(name="equals", passed=True, detail=f"result equals {_quote(expected)}")
    return Check(
        name="equals",
        passed=False,
        detail=f"result {_quote(result.strip())} does not equal {_quote(expected.strip())}",
    )


def check_matches(pattern: str, result: str) -> Check:
    # The pattern comes from the goal's submitter: a bad one is their mistake to report back,
    # never a reason to crash (and so redeliver forever) the evaluator.
    # RE2 runs in time linear in the result, whatever the pattern: ``(a+)+$`` cannot stall it.
    try:
        compiled = compile_user_pattern(pattern)
    except PatternError as exc:
        return Check(name="matches", passed=False, detail=f"invalid regex {_quote(pattern)}: {exc}")
    if compiled.search(result):
        return Check(name="matches", passed=True, detail=f"result matches {_quote(pattern)}")
    return Check(name="matches", passed=False, detail=f"result does not match {_quote(pattern)}")


def _describe_unfinished(task: TaskOutcome) -> str:
    description = f"task {task.task_id} {task.status}"
    return f"{description}: {task.error}" if task.error else description


def _quote(text: str) -> str:
    if len(text) > _QUOTE_LIMIT:
        text = text[:_QUOTE_LIMIT] + "…"
    return f"'{text}'"


def _quote_all(texts: tuple[str, ...] | list[str]) -> str:
    return ", ".join(_quote(text) for text in texts)
