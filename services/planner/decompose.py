"""Rule-based decomposition of a goal's text into a sequential plan.

The text is split into steps, then each step is mapped to one built-in tool by its words.

Splitting, in this order:

* a numbered list (``1. foo`` / ``2) bar``) or a bullet list (``- foo``, ``* foo``, ``• foo``):
  one step per item; lines before the first item introduce the list and are dropped, other
  unmarked lines continue the item above them;
* otherwise one step per non-empty line;
* and within every item or line: ``A then B``, ``A, then B`` (or ``A. Then B``),
  ``A and then B``, ``A; B``, and ``A, finally B`` / ``A. Next B``.

Leading connectives ("first", "then", "next", "finally", "after that") are dropped. Text
without any separator is one step. At most ``MAX_STEPS`` steps are kept.

Mapping a step to a tool, first match wins:

* ``write X to file Y`` / ``write file Y with X`` -> ``write_file {path, content}``
* ``read file X`` / ``read X.txt`` -> ``read_file {path}``
* ``echo X`` / ``say X`` / ``print X`` -> ``echo {text}``
* (for write and echo, a content of ``it`` / ``that`` / ``the result`` / ``the output`` means
  the previous step's output: ``{{steps.<previous>.output}}``)
* a URL together with fetch/get/download/retrieve (or a bare URL) -> ``http_get {url}``
* ``sleep 2`` / ``wait 1.5 seconds`` / ``pause for 500 ms`` -> ``sleep {seconds}``
* ``wait until 2026-12-24T18:00:00Z`` (an RFC 3339 time with a zone) -> ``wait_until {at}``
* ``compute 17*23`` / ``calculate (2+3)*4`` / ``what is 2^10`` or a bare expression ->
  ``calculator {expression}``
* ``<server>.<tool> {JSON arguments}`` (optionally after ``use``, ``call`` or ``run``, the
  arguments after ``with``), naming a tool of an MCP server that the planner may use (trusted,
  or granted to the goal) -> that tool with those arguments, granted to the task
* ``summarize`` / ``summarise`` / ``report`` ->
  ``echo {text: "Summary: {{steps.<previous>.output}}"}`` (the step's own text when it is the
  first step)
* anything else -> ``echo {text: <the step's text>}``

Step ``sN`` depends on ``sN-1``, so the plan runs in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from events.instants import parse_instant
from events.linear_regex import NOT_SPACE, SPACE, compile_linear
from events.model import TaskSpec
from events.tools import BUILTIN_TOOLS, ToolSpec
from events.untrusted_json import decode_json
from services.planner.references import step_reference

__all__ = ["MAX_STEPS", "decompose_text", "split_steps", "task_for_step"]

MAX_STEPS = 50

# A sleep needs more time than it sleeps; this margin keeps the timeout from racing it.
_SLEEP_TIMEOUT_MARGIN_S = 30.0
_DEFAULT_TIMEOUT_S = 30.0
_DESCRIPTION_LIMIT = 200

# Every pattern here runs on a goal's text, which anyone may send: RE2, linear in the text.
_S = SPACE  # Unicode whitespace, as Python's \s
_NS = NOT_SPACE
_LIST_ITEM = compile_linear(rf"^{_S}*(?:\d{{1,3}}[.)]|[-*•]){_S}+(?P<item>.*{_NS}){_S}*$")
_INLINE_SEPARATOR = compile_linear(
    rf"{_S}*;{_S}*"
    rf"|{_S}*[,.]?{_S}+and{_S}+then{_S}+"
    rf"|{_S}*[,.]?{_S}+then{_S}+"
    # "..., finally C" / "... . Next C": the separator takes the connective with it.
    rf"|{_S}*[,.]{_S}+(?:finally|next|after{_S}+that|afterwards)\b[,:]?{_S}*",
    ignore_case=True,
)
_LEADING_CONNECTIVE = compile_linear(
    rf"^(?:(?:first(?:ly)?|then|next|finally|and then|after that|afterwards)\b[,:]?{_S}*)+",
    ignore_case=True,
)

_WRITE_TO_FILE = compile_linear(
    rf"^(?:write|save|store){_S}+(?P<content>.+?){_S}+(?:to|into|in){_S}+(?:the{_S}+)?file{_S}+(?P<path>{_NS}+)$",
    ignore_case=True,
    dot_all=True,
)
_WRITE_TO_NAMED_FILE = compile_linear(
    rf"^(?:write|save|store){_S}+(?P<content>.+?){_S}+(?:to|into){_S}+(?P<path>[\w./-]+\.\w{{1,8}})$",
    ignore_case=True,
    dot_all=True,
)
_WRITE_FILE_WITH = compile_linear(
    rf"^write{_S}+(?:to{_S}+)?(?:the{_S}+)?file{_S}+(?P<path>{_NS}+){_S}+(?:with|containing){_S}+(?P<content>.+)$",
    ignore_case=True,
    dot_all=True,
)
_READ_FILE = compile_linear(
    rf"^(?:read|open|show|cat){_S}+(?:the{_S}+)?(?:file{_S}+(?P<path>{_NS}+)|(?P<named>[\w./-]+\.\w{{1,8}}))$",
    ignore_case=True,
)
_ECHO = compile_linear(
    rf"^(?:echo|say|print)\b:?{_S}*(?P<text>.+)$", ignore_case=True, dot_all=True
)
_URL = compile_linear(r"https?://[^\s\p{Z}\x{85}\"'<>]+", ignore_case=True)
_FETCH_WORD = compile_linear(
    r"\b(?:fetch|get|download|retrieve|curl|load|read|open)\b", ignore_case=True
)
_SLEEP = compile_linear(
    rf"^(?:sleep|wait|pause){_S}+(?:for{_S}+)?(?P<amount>\d+(?:\.\d+)?){_S}*(?P<unit>[a-z]*)\.?$",
    ignore_case=True,
)
_WAIT_UNTIL = compile_linear(
    rf"^(?:sleep|wait|pause){_S}+until{_S}+(?P<at>{_NS}+?)\.?$", ignore_case=True
)
_SECONDS_PER_UNIT = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
}
_COMPUTE = compile_linear(
    rf"^(?:compute|calculate|calc|evaluate|eval|solve|work{_S}+out|what{_S}+is|what's){_S}+(?P<expr>.+?)[?.!]?$",
    ignore_case=True,
)
# What the calculator tool understands: numbers, + - * / // % **, parentheses.
_ARITHMETIC = compile_linear(r"^[\d\s.+\-*/%()]+$")
_HAS_OPERATOR = compile_linear(r"\d\s*(?:\*\*|//|[+\-*/%])\s*[\d(.]|^\s*[-+]?\(")
# "3 x 4" and "3 \N{MULTIPLICATION SIGN} 4" mean 3*4 to a person, not to the calculator.
_TIMES_X = compile_linear("(\\d)\\s*[x\N{MULTIPLICATION SIGN}]\\s*")
_PREVIOUS_OUTPUT = compile_linear(
    rf"^(?:it|that|this|the{_S}+(?:result|output|answer|summary)(?:{_S}+of{_S}+(?:it|that))?)$",
    ignore_case=True,
)
_SUMMARY = compile_linear(r"\b(?:summari[sz]e|summary|report)\b", ignore_case=True)
# A tool named by its qualified MCP name, with JSON arguments.
_NAMED_TOOL = compile_linear(
    rf"^(?:(?:use|call|run){_S}+)?(?P<tool>[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+)"
    rf"(?:{_S}+(?:with{_S}+)?(?P<args>\{{.*\}}))?{_S}*$",
    ignore_case=True,
    dot_all=True,
)
_json_object = msgspec.json.Decoder(dict[str, Any])


def decompose_text(
    text: str, named_tools: Mapping[str, ToolSpec] | None = None
) -> tuple[TaskSpec, ...]:
    """A sequential plan ``s1..sN`` for ``text``; never empty. ``named_tools``: the tools a
    step may name by their qualified name (MCP tools the goal may use)."""
    steps = split_steps(text) or [text.strip() or text]
    tasks: list[TaskSpec] = []
    for index, step in enumerate(steps, start=1):
        previous = f"s{index - 1}" if index > 1 else None
        named = _named_tool(step, named_tools or {}, task_id=f"s{index}", previous=previous)
        tasks.append(named or task_for_step(step, task_id=f"s{index}", previous=previous))
    return tuple(tasks)


def _named_tool(
    step: str, tools: Mapping[str, ToolSpec], *, task_id: str, previous: str | None
) -> TaskSpec | None:
    match = _NAMED_TOOL.match(step)
    if match is None or match.group("tool") not in tools:
        return None
    spec = tools[match.group("tool")]
    args: dict[str, Any] = {}
    if match.group("args"):
        try:
            args = decode_json(_json_object, match.group("args"))
        except msgspec.DecodeError:
            return None  # not arguments after all: the step is read as text
    return TaskSpec(
        task_id=task_id,
        description=_describe(step),
        tool=spec.name,
        args=args,
        depends_on=(previous,) if previous is not None else (),
        timeout_s=spec.default_timeout_s,
        allowed_tools=() if spec.trusted else (spec.name,),
    )


def split_steps(text: str) -> list[str]:
    """The steps of ``text`` (see the module docstring), at most ``MAX_STEPS``."""
    steps: list[str] = []
    for chunk in _chunks(text):
        for part in _INLINE_SEPARATOR.split(chunk):
            step = _LEADING_CONNECTIVE.sub("", part.strip()).strip()
            if step:
                steps.append(step)
    return steps[:MAX_STEPS]


def _chunks(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not any(_LIST_ITEM.match(line) for line in lines):
        return [line.strip() for line in lines]
    items: list[str] = []
    for line in lines:
        marked = _LIST_ITEM.match(line)
        if marked is not None:
            items.append(marked.group("item"))
        elif items:
            items[-1] = f"{items[-1]} {line.strip()}"
    return items


def task_for_step(step: str, *, task_id: str, previous: str | None) -> TaskSpec:
    """The task that carries out one step; ``previous`` is the step it follows, if any."""
    tool, args = _tool_for(step, previous)
    timeout_s = _DEFAULT_TIMEOUT_S
    if tool == "sleep":
        timeout_s = float(args["seconds"]) + _SLEEP_TIMEOUT_MARGIN_S
    elif tool == "wait_until":
        timeout_s = BUILTIN_TOOLS[tool].default_timeout_s
    return TaskSpec(
        task_id=task_id,
        description=_describe(step),
        tool=tool,
        args=args,
        depends_on=(previous,) if previous is not None else (),
        timeout_s=timeout_s,
    )


def _tool_for(step: str, previous: str | None) -> tuple[str, dict[str, Any]]:
    matchers = (_match_write, _match_read, _match_echo, _match_fetch, _match_wait, _match_sleep)
    for match_step in matchers:
        found = match_step(step, previous)
        if found is not None:
            return found
    expression = _arithmetic_in(step)
    if expression is not None:
        return "calculator", {"expression": expression}
    if _SUMMARY.search(step) and previous is not None:
        return "echo", {"text": f"Summary: {step_reference(previous)}"}
    return "echo", {"text": step}


def _match_write(step: str, previous: str | None) -> tuple[str, dict[str, Any]] | None:
    for pattern in (_WRITE_FILE_WITH, _WRITE_TO_FILE, _WRITE_TO_NAMED_FILE):
        match = pattern.match(step)
        if match is not None:
            path = _unquote(match.group("path"))
            content = _content_or_reference(match.group("content"), previous)
            return "write_file", {"path": path, "content": content}
    return None


def _match_read(step: str, _previous: str | None) -> tuple[str, dict[str, Any]] | None:
    match = _READ_FILE.match(step)
    if match is None:
        return None
    return "read_file", {"path": _unquote(match.group("path") or match.group("named"))}


def _match_echo(step: str, previous: str | None) -> tuple[str, dict[str, Any]] | None:
    match = _ECHO.match(step)
    if match is None:
        return None
    return "echo", {"text": _content_or_reference(match.group("text"), previous)}


def _content_or_reference(text: str, previous: str | None) -> str:
    """``it`` / ``the result`` after an earlier step means that step's output."""
    if previous is not None and _PREVIOUS_OUTPUT.match(text):
        return step_reference(previous)
    return _unquote(text)


def _match_fetch(step: str, _previous: str | None) -> tuple[str, dict[str, Any]] | None:
    url = _URL.search(step)
    if url is None:
        return None
    bare = step.strip() == url.group(0)
    if not (bare or _FETCH_WORD.search(step)):
        return None
    # Sentence punctuation right after a URL belongs to the sentence, not the URL.
    return "http_get", {"url": url.group(0).rstrip(".,;:!?)")}


def _match_wait(step: str, _previous: str | None) -> tuple[str, dict[str, Any]] | None:
    match = _WAIT_UNTIL.match(step)
    if match is None:
        return None
    try:
        parse_instant(match.group("at"))
    except ValueError:
        return None  # not a time agora can wait for: the step is echoed, as any other
    return "wait_until", {"at": match.group("at")}


def _match_sleep(step: str, _previous: str | None) -> tuple[str, dict[str, Any]] | None:
    match = _SLEEP.match(step)
    if match is None:
        return None
    per_unit = _SECONDS_PER_UNIT.get(match.group("unit").lower())
    if per_unit is None:
        return None
    return "sleep", {"seconds": float(match.group("amount")) * per_unit}


def _arithmetic_in(step: str) -> str | None:
    """The calculator expression a step asks for, or None when it asks for something else."""
    match = _COMPUTE.match(step)
    candidate = match.group("expr") if match is not None else step
    expression = (
        _times_as_star(candidate.strip()).replace("^", "**").replace("\N{DIVISION SIGN}", "/")
    )
    if not _ARITHMETIC.match(expression) or not any(char.isdigit() for char in expression):
        return None
    # "compute 42" is a calculation; a bare "42" is just text.
    if match is None and not _HAS_OPERATOR.search(expression):
        return None
    return expression.strip()


def _times_as_star(text: str) -> str:
    """``3 x 4`` -> ``3*4``: an ``x`` between two digits is multiplication."""
    pieces: list[str] = []
    done = 0
    for times in _TIMES_X.finditer(text):
        if times.end() < len(text) and text[times.end()].isdigit():
            pieces.append(text[done : times.start(1) + 1] + "*")
            done = times.end()
    return "".join(pieces) + text[done:]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return text[1:-1]
    return text


def _describe(step: str) -> str:
    one_line = " ".join(step.split())
    if len(one_line) <= _DESCRIPTION_LIMIT:
        return one_line
    return one_line[: _DESCRIPTION_LIMIT - 1] + "…"
