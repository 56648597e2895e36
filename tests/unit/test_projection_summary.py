"""Trajectory summaries: given events of every type -> when summarised in SQL -> then exactly
what ``events.summary.summarize`` says, for long text, odd whitespace, unicode and numbers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from events.catalog import (
    EVENT_TYPES,
    ApprovalAnswered,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    CancelRequested,
    CommandRejected,
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCancelled,
    GoalCompleted,
    GoalDequeued,
    GoalFailed,
    GoalPaused,
    GoalQueued,
    GoalRejected,
    GoalResumed,
    IterationInterrupted,
    LeaseAcquired,
    ListedTool,
    LlmRequested,
    LlmResponded,
    MemoryCompacted,
    MemoryForgotten,
    MemoryStored,
    MessageQueued,
    MessageReceived,
    MessageRejected,
    PauseRequested,
    PlanCreated,
    PlanRevised,
    ResumeRequested,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TimerFired,
    TimerStarted,
    ToolCalled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
    ToolsListed,
)
from events.codec import decode_event, encode
from events.model import Event, MemoryItem, TaskOutcome, TaskSpec
from events.summary import summarize
from projections.store import ProjectionStore
from projections.summary_sql import PYTHON_WHITESPACE

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

TEXTS = (
    "",
    "short",
    "  leading, trailing and   inner  runs \t\n of whitespace  ",
    "unicode spaces:\u00a0no-break,\u2003em,\u3000ideographic,\u2028line\u2029para\x85nel",
    "ascii separators:\x1c\x1d\x1e\x1f and vertical\x0btab\x0cfeed\rreturn",
    "é" * 59 + "✗",  # exactly 60 code points: not clipped
    "é" * 60 + "✗",  # 61: clipped
    "e\u0301" * 40,  # combining accents count as two code points each
    "emoji 👩‍👩‍👧 family " * 12,
    "x" * 500,
    "quotes \"and\" back\\slashes and 'apostrophes' and {braces} and 100%",
)
ARGS: tuple[dict[str, Any], ...] = (
    {},
    {"expression": "17*23"},
    {"text": "a  b\n\tc", "nested": {"list": [1, 2.5, None, True, "ü"]}},
    {"floats": [0.1, 1.0, -0.0, 1e-7, 1.5e-6, 1e16, 1.5e20, 1e21, 12345678.9, 2.5e-300]},
    {"big": 123456789012345678901234567890, "neg": -42, "s": '\x00\x01\t"\\/\u2028'},
    {"content": "y" * 300, "path": "notes/ü ñ.txt"},
)
FLOATS = (0.0, 0.05, 0.15, 0.25, 1.0, 2.675, 12.3456, 999.95, 1e-9, 123456789.987, 1e20)


def envelope(n: int, producer: str = "planner@0.1.0") -> dict[str, Any]:
    return {
        "event_id": f"e-{n}",
        "goal_id": "g-1",
        "occurred_at": NOW,
        "causation_id": None,
        "correlation_id": "g-1",
        "producer": producer,
    }


def task(n: int) -> dict[str, Any]:
    return {**envelope(n, "executor@0.1.0"), "iteration": 1, "task_id": f"s{n}", "tool": "echo"}


def approval(n: int) -> dict[str, Any]:
    return {**task(n), "approval_id": "g-1/1/s1", "command_id": "c"}


def corpus() -> Iterator[Event]:
    n = 0
    for text in TEXTS:
        n += 1
        yield GoalAccepted(**envelope(n), command_id="c", text=text or "x")
        yield GoalRejected(**envelope(n), command_id="c", reason=text)
        yield ContextRequested(**envelope(n), iteration=1, query=text, k=n)
        yield PlanRevised(**envelope(n), iteration=2, strategy="rules", tasks=(), feedback=text)
        yield ToolReturned(**task(n), attempt=1, output=text, duration_ms=FLOATS[n % 11])
        yield ToolFailed(**task(n), attempt=2, error=text, transient=n % 2 == 0, duration_ms=1.0)
        yield TaskCompleted(**task(n), output=text, attempts=1, duration_ms=2.0)
        yield TaskCompleted(
            **task(n), output=text, attempts=2, duration_ms=4.0, attempt_duration_ms=FLOATS[n % 11]
        )
        # Calls recorded by their outcome alone (no tool_called) name their attempt.
        called_at = datetime(2026, 12, 7, 12, 0, n % 60, tzinfo=UTC)
        yield TaskCompleted(
            **task(n), output=text, attempts=n, duration_ms=1.0, called_at=called_at
        )
        yield ToolFailed(
            **task(n), attempt=n, error=text, transient=False, duration_ms=1.0, called_at=called_at
        )
        yield TaskFailed(**task(n), error=text, attempts=3, duration_ms=3.0)
        yield MemoryStored(**envelope(n), key=f"k/{text[:10]}", text=text, source_event_id="e")
        yield MemoryForgotten(**envelope(n), command_id="c", key=text[:20])
        yield MemoryCompacted(
            **envelope(n),
            through_ordinal=n,
            observations=n * 7,
            summary=text,
            tokens_before=1000 + n,
            tokens_after=400,
            budget=800,
        )
        yield LlmRequested(**envelope(n), provider="p", model="m-1", request_hash="h", purpose=text)
        yield LeaseAcquired(
            **envelope(n), service="planner", holder=text or "h", previous_holder=""
        )
        yield ToolsListed(
            **envelope(n),
            server=text[:20] or "s",
            origin="mcp:s",
            transport="stdio",
            where="mcp-server-time",
            tools=tuple(ListedTool(name=f"s.t{i}") for i in range(n % 3)),
        )
        yield EvaluationRequested(
            **envelope(n),
            iteration=1,
            text="t",
            expect=None,
            result=text,
            tasks=(TaskOutcome(task_id="s1", tool="echo", status="completed"),),
        )
        yield EvaluationCompleted(
            **envelope(n),
            request_id="r",
            iteration=1,
            verdict="revise",
            score=FLOATS[n % 11],
            feedback=text,
        )
        yield GoalCompleted(**envelope(n), result=text, iterations=n, score=1.0)
        yield GoalFailed(**envelope(n), reason=text, iterations=n)
        yield CancelRequested(**envelope(n), command_id="c", reason=text)
        yield PauseRequested(**envelope(n), command_id="c", reason=text)
        yield ResumeRequested(**envelope(n), command_id="c", reason=text)
        yield GoalCancelled(**envelope(n), command_id="c", reason=text, iterations=n)
        yield GoalPaused(**envelope(n), command_id="c", reason=text)
        yield GoalQueued(**envelope(n), keys=("tenant=a",), ticket=n, reason=text)
        yield GoalResumed(**envelope(n), command_id="c", reason=text)
        yield CommandRejected(
            **envelope(n), command_id="c", command="pause", target_goal_id="g-1", reason=text
        )
        yield TaskCancelled(**task(n), attempts=n % 3, duration_ms=1.5, reason=text)
        yield ApprovalAnswered(
            **envelope(n), command_id="c", approval_id="g-1/1/s1", decision="deny", reason=text
        )
        yield ApprovalDenied(**approval(n), reason=text)
        yield MessageReceived(**envelope(n), command_id="c", text=text)
        yield MessageQueued(**envelope(n), command_id="c", iteration=n, text=text)
        yield IterationInterrupted(**envelope(n), command_id="c", iteration=n, text=text)
        yield MessageRejected(**envelope(n), command_id="c", target_goal_id="", reason=text)
        yield ApprovalRejected(
            **envelope(n), command_id="c", approval_id="g-1/1/s1", target_goal_id="", reason=text
        )
    for args in ARGS:
        n += 1
        yield ApprovalRequested(
            **task(n), approval_id="g-1/1/s1", args=args, reason="r", deadline=NOW
        )
        yield ApprovalGranted(**approval(n), args=args, original_args={"a": 1}, edited=n % 2 == 0)
        yield TaskScheduled(**task(n), description="d", args=args, timeout_s=1.0, max_attempts=3)
        yield ToolCalled(**task(n), attempt=1, args=args)
        yield TaskStarted(**task(n), attempt=n)
    for due_at in (NOW, datetime(2026, 12, 24, 18, 0, 0, 123456, tzinfo=UTC)):
        n += 1
        timer = {"attempt": 1, "timer_id": f"t-{n}", "due_at": due_at}
        yield TimerStarted(**task(n), **timer, seconds=90.5)
        yield TimerStarted(**task(n), **{**timer, "attempt": 2}, seconds=4.0, purpose="retry")
        yield TimerFired(**task(n), **timer, late_ms=12.5)
    for value in FLOATS:
        n += 1
        yield ToolReturned(**task(n), attempt=1, output="o", duration_ms=value)
        yield GoalDequeued(**envelope(n), keys=("*",), queued_ms=value)
        yield EvaluationCompleted(
            **envelope(n), request_id="r", iteration=1, verdict="accept", score=value, feedback="f"
        )
    spec = TaskSpec(task_id="s1", description="d", tool="calculator")
    for tasks in (
        (),
        (spec,),
        tuple(TaskSpec(task_id=f"step-{i}", description="d", tool="echo") for i in range(20)),
    ):
        n += 1
        yield PlanCreated(**envelope(n), iteration=1, strategy="llm", tasks=tasks)
    item = MemoryItem(key="k", text="t", score=0.5, goal_id="g-0", source_event_id="e")
    yield ContextProvided(**envelope(n + 1), request_id="r", iteration=1, items=())
    yield ContextProvided(**envelope(n + 2), request_id="r", iteration=1, items=(item, item))
    yield ContextRequested(**envelope(n + 3), iteration=1, query="q")
    yield LlmResponded(
        **envelope(n + 4),
        provider="p",
        model="m-2",
        request_hash="h",
        content="c",
        tokens_in=1200,
        tokens_out=34,
    )
    yield LlmResponded(**envelope(n + 5), provider="p", model="m-2", request_hash="h", content="c")
    for i, text in enumerate(TEXTS):
        yield ToolRefused(
            **task(n + 6 + i), step=2, call=1, args={"path": text}, reason=text or "refused"
        )


EVENTS = list(corpus())


def test_the_corpus_covers_every_event_type() -> None:
    assert {type(event) for event in EVENTS} == set(EVENT_TYPES.values())


def test_sql_summaries_equal_the_python_ones_for_every_event() -> None:
    payloads = [encode(event) for event in EVENTS]
    with ProjectionStore.open(":memory:") as store:
        store.apply_raw(range(1, len(payloads) + 1), payloads)
        in_sql = store.connection.execute(
            "SELECT summary FROM trajectory ORDER BY stream_seq"
        ).fetchall()

    # Python summarises what a consumer decodes, so both sides see the same bytes.
    in_python = [summarize(decode_event(payload)) for payload in payloads]
    mismatches = [
        (type(EVENTS[i]).__name__, py, sql)
        for i, (py, (sql,)) in enumerate(zip(in_python, in_sql, strict=True))
        if py != sql
    ]
    assert mismatches == []


def test_an_unknown_event_type_is_summarised_by_its_type() -> None:
    payload = b'{"type": "goal_levitated", "goal_id": "g-1", "event_id": "e-1"}'
    with ProjectionStore.open(":memory:") as store:
        store.apply_raw([1], [payload])
        [(summary,)] = store.connection.execute("SELECT summary FROM trajectory").fetchall()

    assert summary == "goal_levitated"


def test_python_whitespace_is_exactly_what_str_split_splits_on() -> None:
    every_space = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}

    assert set(PYTHON_WHITESPACE) == every_space
    assert "a".join(PYTHON_WHITESPACE).split() == ["a"] * (len(PYTHON_WHITESPACE) - 1)
