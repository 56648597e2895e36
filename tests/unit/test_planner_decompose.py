"""Rule-based decomposition: given a goal's text -> when decomposed -> then a sequential plan."""

from __future__ import annotations

import time
from typing import Any

import pytest

from events.tools import BUILTIN_TOOLS
from services.planner.decompose import MAX_STEPS, decompose_text, split_steps


def plan(text: str) -> list[tuple[str, dict[str, Any]]]:
    return [(task.tool, task.args) for task in decompose_text(text)]


def test_the_brief_example_computes_then_summarizes_the_result() -> None:
    first, second = decompose_text("compute 17*23 then summarize")

    assert (first.task_id, first.tool, first.args, first.depends_on) == (
        "s1",
        "calculator",
        {"expression": "17*23"},
        (),
    )
    assert (second.task_id, second.tool, second.args, second.depends_on) == (
        "s2",
        "echo",
        {"text": "Summary: {{steps.s1.output}}"},
        ("s1",),
    )
    assert first.description == "compute 17*23"


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("a then b then c", ["a", "b", "c"]),
        ("a, then b", ["a", "b"]),
        ("a and then b", ["a", "b"]),
        ("a; b;c", ["a", "b", "c"]),
        ("First a, then b. Finally c", ["a", "b", "c"]),
        ("a. Then b, next c", ["a", "b", "c"]),
        ("compute 2.5*2 then echo 1. 2", ["compute 2.5*2", "echo 1. 2"]),
        ("1. foo\n2. bar\n3) baz", ["foo", "bar", "baz"]),
        ("Please:\n- foo\n- bar\n  continued\n* baz", ["foo", "bar continued", "baz"]),
        ("• one\n• two", ["one", "two"]),
        ("line one\n\nline two\n", ["line one", "line two"]),
        ("1. compute 2+2 then echo x\n2. sleep 1", ["compute 2+2", "echo x", "sleep 1"]),
        ("just one step", ["just one step"]),
        ("authentication athens thenceforth", ["authentication athens thenceforth"]),
    ],
)
def test_text_is_split_into_steps(text: str, steps: list[str]) -> None:
    assert split_steps(text) == steps


@pytest.mark.parametrize(
    ("step", "tool", "args"),
    [
        ("compute 17*23", "calculator", {"expression": "17*23"}),
        ("calculate (2+3)*4", "calculator", {"expression": "(2+3)*4"}),
        ("what is 2^10?", "calculator", {"expression": "2**10"}),
        ("evaluate 3 x 4", "calculator", {"expression": "3*4"}),
        ("(1 + 2) / 3", "calculator", {"expression": "(1 + 2) / 3"}),
        ("echo hello world", "echo", {"text": "hello world"}),
        ("say 'quoted'", "echo", {"text": "quoted"}),
        ("print done", "echo", {"text": "done"}),
        ("sleep 2", "sleep", {"seconds": 2.0}),
        ("wait 1.5 seconds", "sleep", {"seconds": 1.5}),
        ("pause for 500 ms", "sleep", {"seconds": 0.5}),
        ("wait 2 minutes", "sleep", {"seconds": 120.0}),
        ("wait until 2026-12-24T18:00:00Z.", "wait_until", {"at": "2026-12-24T18:00:00Z"}),
        (
            "Sleep until 2026-12-24t19:00:00+01:00",
            "wait_until",
            {"at": "2026-12-24t19:00:00+01:00"},
        ),
        ("wait until christmas", "echo", {"text": "wait until christmas"}),
        ("fetch https://example.com/a.json.", "http_get", {"url": "https://example.com/a.json"}),
        ("download http://x.org/f?q=1", "http_get", {"url": "http://x.org/f?q=1"}),
        ("https://example.com", "http_get", {"url": "https://example.com"}),
        ("read file notes/today.md", "read_file", {"path": "notes/today.md"}),
        ("read data.csv", "read_file", {"path": "data.csv"}),
        ("write hello to file out.txt", "write_file", {"path": "out.txt", "content": "hello"}),
        (
            "write file out.txt with hi there",
            "write_file",
            {"path": "out.txt", "content": "hi there"},
        ),
        ("save 'a b' to notes.txt", "write_file", {"path": "notes.txt", "content": "a b"}),
        ("tell me a joke", "echo", {"text": "tell me a joke"}),
        ("42", "echo", {"text": "42"}),
        ("what is the capital of France?", "echo", {"text": "what is the capital of France?"}),
        ("summarize", "echo", {"text": "summarize"}),
        ("wait 5 fortnights", "echo", {"text": "wait 5 fortnights"}),
    ],
)
def test_a_step_is_mapped_to_a_tool_by_its_words(
    step: str, tool: str, args: dict[str, Any]
) -> None:
    assert plan(step) == [(tool, args)]


@pytest.mark.parametrize("word", ["summarize", "summarise it", "write a report", "give a summary"])
def test_a_summary_step_echoes_the_previous_output(word: str) -> None:
    assert plan(f"echo x then {word}")[1] == ("echo", {"text": "Summary: {{steps.s1.output}}"})


@pytest.mark.parametrize("pronoun", ["it", "the result", "that", "the output"])
def test_it_and_the_result_refer_to_the_previous_output(pronoun: str) -> None:
    assert plan(f"compute 2+2 then write {pronoun} to file r.txt")[1] == (
        "write_file",
        {"path": "r.txt", "content": "{{steps.s1.output}}"},
    )
    assert plan(f"compute 2+2 then echo {pronoun}")[1] == ("echo", {"text": "{{steps.s1.output}}"})


def test_steps_run_in_order() -> None:
    tasks = decompose_text("a\nb\nc\nd")

    assert [task.task_id for task in tasks] == ["s1", "s2", "s3", "s4"]
    assert [task.depends_on for task in tasks] == [(), ("s1",), ("s2",), ("s3",)]


def test_at_most_fifty_steps_are_kept() -> None:
    tasks = decompose_text(" then ".join(f"echo {n}" for n in range(80)))

    assert len(tasks) == MAX_STEPS == 50
    assert tasks[-1].args == {"text": "49"}


def test_a_sleep_gets_a_timeout_longer_than_the_sleep() -> None:
    (task,) = decompose_text("sleep 100")

    assert task.timeout_s > 100


def test_text_without_steps_still_gives_one_task() -> None:
    assert plan("   ") == [("echo", {"text": "   "})]
    assert plan("then") == [("echo", {"text": "then"})]


def test_long_descriptions_are_shortened() -> None:
    (task,) = decompose_text("echo " + "x" * 500)

    assert len(task.description) == 200
    assert task.args == {"text": "x" * 500}  # the arguments are never cut


@pytest.mark.parametrize(
    "text",
    [
        "compute 17*23 then summarize",
        "fetch https://example.com then write it to file page.html",
        "1. sleep 1\n2. read file a.txt\n3. echo done",
    ],
)
def test_decomposed_arguments_are_valid_for_the_builtin_tools(text: str) -> None:
    for task in decompose_text(text):
        if "{{" not in str(task.args):
            BUILTIN_TOOLS[task.tool].args.model_validate(task.args)


# A goal's text is anyone's: every pattern on it runs in linear time (RE2). Before, the first
# of these took 48 s with 2,000 spaces, and the tab-and-space echo more than six minutes.
_LIMIT = 20_000
HOSTILE_TEXTS = {
    "a run of spaces": "a" + " " * (_LIMIT - 2) + "b",
    "tabs and spaces after echo": "echo " + "\t " * (_LIMIT // 2 - 4) + "x,",
    "unicode spaces": "a" + "\u2003\u00a0" * (_LIMIT // 2 - 1) + "b",
    "separators": ", " * (_LIMIT // 2),
    "a long write": "write " + "a " * (_LIMIT // 2 - 5) + "to",
    "many x between digits": "3" + " x" * (_LIMIT // 2 - 1),
    "a list item of spaces": "- " + " " * (_LIMIT - 3) + "x",
    "a long URL": "fetch http://" + "a" * (_LIMIT - 14),
    "compute spaces": "compute " + "1 " * (_LIMIT // 2 - 5) + "+",
    "newlines and spaces": "\n \n" * (_LIMIT // 3),
}


@pytest.mark.parametrize("text", HOSTILE_TEXTS.values(), ids=HOSTILE_TEXTS.keys())
def test_the_longest_hostile_text_is_decomposed_at_once(text: str) -> None:
    started = time.process_time()

    tasks = decompose_text(text)

    assert tasks, "every text gets a plan"
    assert time.process_time() - started < 1.0


def test_the_finally_separator_takes_its_connective_with_it() -> None:
    assert split_steps("echo a, finally echo b. Next echo c, after that echo d") == [
        "echo a",
        "echo b",
        "echo c",
        "echo d",
    ]
    assert split_steps("echo a. nextcloud is a word") == ["echo a. nextcloud is a word"]


def test_unicode_whitespace_separates_words_as_ascii_does() -> None:
    assert plan("echo\u00a0hello\u2003then\u2003sleep\u00a01") == [
        ("echo", {"text": "hello"}),
        ("sleep", {"seconds": 1.0}),
    ]


def test_an_x_between_digits_is_multiplication_only_there() -> None:
    assert plan("compute 2x3 x 4") == [("calculator", {"expression": "2*3*4"})]
    assert plan("what is 12 \N{MULTIPLICATION SIGN} 4?") == [("calculator", {"expression": "12*4"})]
