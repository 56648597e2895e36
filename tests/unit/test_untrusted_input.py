"""Untrusted input -> parsed -> a clear refusal on its goal, in bounded time, never a crash."""

from __future__ import annotations

import json
import time

import pytest

from events.commands import ParsedGoal, RejectedGoal, parse_goal_command
from events.errors import DecodeError, LlmResponseError
from events.ids import goal_id_for_command
from events.linear_regex import PatternError, compile_user_pattern
from events.untrusted_json import object_fields, strip_code_fence
from services.evaluator.decide import check_matches
from services.evaluator.judge import parse_judgement
from services.llm.messages import LlmReply
from services.planner.llm_plan import parse_plan

DEEP = "[" * 10_000 + "]" * 10_000


def parse(data: bytes) -> ParsedGoal | RejectedGoal:
    return parse_goal_command(data, fallback_command_id="intake-7", max_bytes=256 * 1024)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ('{"text": "x", "command_id": "c-deep", "metadata": {"a": ' + DEEP + "}}", "nested"),
        (
            '{"command_id": "c-deep", "text": "x", "metadata": '
            + ('{"a":' * 5000 + "1" + "}" * 5000)
            + "}",
            "nested",
        ),
        ('{"text": "x", "command_id": "c-deep", "metadata": {"n": 1e400}}', "out of range"),
        ('{"text": "x", "command_id": "c-deep", "max_cost_usd": -1e999}', "out of range"),
        (
            '{"text": "x", "command_id": "c-deep", "metadata": {"n": ' + "9" * 5000 + "}}",
            "out of range",
        ),
        ('{"text": "x\\ud800", "command_id": "c-deep"}', ""),
        ('{"text": "x", "command_id": "c-deep", "metadata": {"\\udc00": 1}}', "surrogate"),
    ],
    ids=[
        "deep arrays",
        "deep objects",
        "1e400",
        "-1e999",
        "huge integer",
        "lone surrogate",
        "surrogate key",
    ],
)
def test_a_json_object_msgspec_cannot_read_is_rejected_on_its_goal(
    payload: str, reason: str
) -> None:
    outcome = parse(payload.encode())

    assert isinstance(outcome, RejectedGoal)
    assert outcome.command_id == "c-deep"
    assert outcome.goal_id == goal_id_for_command("c-deep")
    assert "a JSON object agora cannot read" in outcome.reason
    assert reason in outcome.reason


def test_a_rejected_unreadable_object_keeps_the_goal_id_it_names() -> None:
    outcome = parse(b'{"goal_id": "mine", "text": "t", "metadata": {"n": 1e400}}')

    assert isinstance(outcome, RejectedGoal)
    assert (outcome.goal_id, outcome.command_id, outcome.text) == ("mine", "intake-7", "t")


def test_an_oversized_unreadable_object_is_rejected_for_its_size_without_reading_it() -> None:
    payload = b'{"text": "x", "metadata": ' + b"[" * 300_000 + b"]" * 300_000 + b"}"

    outcome = parse(payload)

    assert isinstance(outcome, RejectedGoal)
    assert "the limit is 262144 bytes" in outcome.reason
    assert outcome.goal_id == goal_id_for_command("intake-7")


@pytest.mark.parametrize(
    "data", [b"[1, 2]", b'{"text": "x",', b"\xff\xfe", b"nul", b'{"a":1} {"b":2}']
)
def test_bytes_that_are_no_json_object_have_no_goal_to_blame(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse(data)


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"text": "x", "goal_id": "abc\n"}, "goal_id"),
        ({"text": "x", "steps": [{"tool": "echo", "id": "s1\n"}]}, "steps[].id"),
        (
            {
                "text": "x",
                "steps": [{"tool": "echo", "id": "a"}, {"tool": "echo", "depends_on": ["a\n"]}],
            },
            "steps[].depends_on",
        ),
        ({"text": "x", "forked_from": {"goal_id": "g\n", "at_seq": 3}}, "forked_from.goal_id"),
    ],
)
def test_an_id_with_a_final_newline_is_no_subject_token(
    command: dict[str, object], field: str
) -> None:
    outcome = parse(json.dumps(command).encode())

    assert isinstance(outcome, RejectedGoal)
    assert f"{field} " in outcome.reason
    assert "\n" not in outcome.goal_id


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(?=a)b", "lookaround"),
        ("(a)\\1", "backreferences"),
        ("[", "missing ]"),
        ("a" * 1001, "the limit is 1000"),
        ("((a{100}){100}){100}", "repetition"),
    ],
)
def test_an_expect_pattern_agora_cannot_run_is_rejected_at_intake(pattern: str, why: str) -> None:
    command = {"text": "x", "expect": {"matches": pattern}}

    outcome = parse(json.dumps(command).encode())

    assert isinstance(outcome, RejectedGoal)
    assert "expect.matches is not a pattern agora can run" in outcome.reason
    assert why in outcome.reason


def test_a_catastrophic_pattern_is_checked_in_linear_time() -> None:
    started = time.process_time()

    check = check_matches("(a+)+$", "a" * 100_000 + "!")

    assert not check.passed
    assert check_matches("(a+)+$", "a" * 40).passed
    assert time.process_time() - started < 1.0  # Python's re: years


def test_a_pattern_recorded_before_intake_checked_it_fails_the_check_clearly() -> None:
    check = check_matches("(?<=x)y", "xy")

    assert not check.passed
    assert "RE2 syntax" in check.detail


def test_user_patterns_are_refused_with_what_to_change() -> None:
    with pytest.raises(PatternError, match="no lookaround"):
        compile_user_pattern("(?!x)")
    assert compile_user_pattern(r"^\d{3}-\w+$").search("123-abc") is not None


def test_a_model_answer_nested_too_deeply_is_a_bad_answer_not_a_crash() -> None:
    deep = '{"score": 0.5, "reasoning": "r", "extra": ' + DEEP + "}"

    with pytest.raises(LlmResponseError, match="nested too deeply"):
        parse_judgement(LlmReply(provider="p", model="m", content=deep))
    problems = parse_plan('{"notes": ' + DEEP + ', "tasks": []}', {})
    assert isinstance(problems, list)
    assert "nested too deeply" in problems[0]


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ('```json\n{"a": 1}\n```', '{"a": 1}'),
        ('  ```\n{"a": 1}```  ', '{"a": 1}'),
        ('{"a": "```"}', '{"a": "```"}'),
        ("``````", ""),
        ("```", "```"),
    ],
)
def test_a_code_fence_around_a_model_answer_is_taken_off(text: str, body: str) -> None:
    assert strip_code_fence(text) == body


def test_stripping_a_fence_is_linear_in_whitespace() -> None:
    started = time.process_time()

    strip_code_fence("```" + " " * 1_000_000 + "x")

    assert time.process_time() - started < 1.0


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        (
            b'{"goal_id": "g", "x": [1, {"goal_id": "inner"}], "command_id": "c"}',
            {"goal_id": "g", "command_id": "c"},
        ),
        (b' { "goal_id" : "a\\nb" } ', {"goal_id": "a\nb"}),
        (b'{"goal_id": 1, "command_id": "\\ud800"}', {}),
        (b"{}", {}),
        (b'{"a": 1e400, "b": -0.5E-3, "c": [true, false, null], "goal_id": "z"}', {"goal_id": "z"}),
    ],
)
def test_the_scanner_finds_top_level_strings_of_an_object(
    data: bytes, fields: dict[str, str]
) -> None:
    assert object_fields(data, ("goal_id", "command_id")) == fields


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b'{"a": 1,}',
        b'{"a": [1,]}',
        b'{"a" 1}',
        b'{"a": tru}',
        b'{"a": "x',
        b'{"a": [}',
        b'{"a": {]}',
        b'{"a": 1} x',
        b'{"a": 01}',
    ],
)
def test_the_scanner_refuses_what_is_not_one_json_object(data: bytes) -> None:
    assert object_fields(data, ("goal_id",)) is None
