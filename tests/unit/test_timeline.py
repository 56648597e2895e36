"""The timeline and its Gantt chart, from recorded event logs (tests/data).

``llm-goal.json`` holds a model-planned goal (context, plan, a ReAct task with two tool calls,
an LLM judge, a revision, two plain tasks, a second judgement) and a DAG whose first two steps
ran in parallel; ``history-v1.json`` holds goals written by the code before the hot-path
redesign (task_started and tool_returned for plain tasks, retries, a rejection).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from events.catalog import (
    ApprovalAnswered,
    ApprovalGranted,
    ApprovalRequested,
    GoalCompleted,
    LlmResponded,
    TaskCompleted,
    TaskScheduled,
    ToolCalled,
)
from events.codec import decode_event
from events.model import Event
from infra.dashboard.charts import gantt_svg
from projections.gantt import render_timeline, row_detail
from projections.spans import goal_spans
from projections.timeline import Bar, Timeline, build_timeline
from tests.unit.planner_harness import NOW
from tests.unit.test_planner_approvals import S1, WRITE_THEN_ECHO, Approving
from tests.unit.test_planner_loop import GOAL

DATA = Path(__file__).parents[1] / "data"


def _recorded(name: str) -> list[Event]:
    record = json.loads((DATA / name).read_text(encoding="utf-8"))
    return [decode_event(m["payload"].encode()) for m in record["messages"]]


LLM_LOG = _recorded("llm-goal.json")
OLD_LOG = _recorded("history-v1.json")


def _timeline(goal_id: str, log: list[Event]) -> Timeline:
    timeline = build_timeline(goal_id, log)
    assert timeline is not None
    return timeline


def _labels(bars: list[Bar]) -> list[str]:
    return [bar.label for bar in bars]


def _row(timeline: Timeline, label: str) -> Bar:
    [bar] = [b for b in timeline.rows() if b.label == label]
    return bar


def test_a_model_planned_goal_nests_each_model_and_tool_call_under_its_step() -> None:
    timeline = _timeline("r-llm", LLM_LOG)
    assert timeline.status == "completed"
    top = [(b.kind, b.label) for b in timeline.bars]
    assert top == [
        ("context", "memory context"),
        ("plan", "planner plan #1"),
        ("task", "r1 react"),
        ("evaluation", "evaluator judge #1"),
        ("plan", "planner revise #2"),
        ("task", "s1 calculator #2"),
        ("task", "s2 echo #2"),
        ("evaluation", "evaluator judge #2"),
        ("outcome", "goal completed"),
        ("memory", "memory"),
    ]
    plan, react, judge, revise = (timeline.bars[i] for i in (1, 2, 3, 4))
    assert _labels(plan.children) == ["llm plan scripted-gpt"]
    assert _labels(revise.children) == ["llm revise scripted-gpt"]
    assert _labels(judge.children) == ["llm judge scripted-gpt"]
    assert _labels(sorted(react.children, key=lambda b: b.start)) == [
        "llm react scripted-gpt",
        "calculator (step 1)",
        "llm react scripted-gpt",
        "echo (step 2)",
        "llm react scripted-gpt",
    ]
    # A plain task's one call is the task itself: no row of its own.
    assert _row(timeline, "s1 calculator #2").children == []
    # Each step lies within the goal, each call within its step.
    for bar in timeline.rows():
        assert timeline.start <= bar.start <= bar.end <= timeline.end
    for call in react.children:
        assert react.start <= call.start
    assert judge.detail == "revise 0.65"


def test_tokens_cost_and_calls_add_up_to_the_log() -> None:
    goal_events = [e for e in LLM_LOG if e.goal_id == "r-llm"]
    answers = [e for e in goal_events if isinstance(e, LlmResponded)]
    timeline = _timeline("r-llm", LLM_LOG)
    assert timeline.llm_calls == len(answers) == 7
    assert timeline.tokens_in == sum(a.tokens_in for a in answers)
    assert timeline.tokens_out == sum(a.tokens_out for a in answers)
    assert timeline.cost_usd == pytest.approx(sum(a.cost_usd for a in answers))
    assert timeline.tool_calls == sum(isinstance(e, ToolCalled) for e in goal_events) == 4
    llm_rows = [b for b in timeline.rows() if b.kind == "llm"]
    assert sorted(round(b.duration_ms, 3) for b in llm_rows) == sorted(
        round(a.latency_ms, 3) for a in answers
    )
    headline = render_timeline(timeline, 120)[0]
    assert "7 LLM calls" in headline
    assert f"{timeline.tokens_in}→{timeline.tokens_out} tok" in headline


def test_parallel_tasks_overlap_on_rows_of_their_own() -> None:
    timeline = _timeline("r-dag", LLM_LOG)
    a, b, c = (_row(timeline, label) for label in ("a sleep", "b sleep", "c echo"))
    assert a.start < b.end  # ran side by side
    assert b.start < a.end
    assert c.start >= max(a.end, b.end)  # the join waited for both
    lines = render_timeline(timeline, 100)
    axis_start = lines[1].index("0")
    row_a = next(line for line in lines if line.startswith("a sleep"))
    row_b = next(line for line in lines if line.startswith("b sleep"))
    row_c = next(line for line in lines if line.startswith("c echo"))
    # a and b start in the same column and a (0.2 s) reaches about twice as far as b (0.1 s).
    assert row_a.index("█") == row_b.index("█") == axis_start
    assert 1.6 < row_a.count("█") / row_b.count("█") < 2.4
    assert row_c.index("█") >= row_a.rindex("█")
    completed = [e for e in LLM_LOG if isinstance(e, TaskCompleted) and e.task_id == "a"]
    assert f"tool {completed[0].duration_ms:.1f} ms" in row_a


def test_retries_show_every_attempt_and_a_revision_reruns_the_task() -> None:
    timeline = _timeline("h-revised", OLD_LOG)
    first = _row(timeline, "s1 sleep")
    assert (first.status, first.attempts) == ("failed", 3)
    assert _labels(first.children) == ["sleep", "sleep (attempt 2)", "sleep (attempt 3)"]
    assert all(call.status == "failed" for call in first.children)
    assert "timed out" in first.children[0].detail
    assert _row(timeline, "s1 sleep #2").status == "completed"
    assert timeline.tool_calls == 4


def test_an_older_log_draws_plain_tasks_without_rows_per_call() -> None:
    timeline = _timeline("h-standard", OLD_LOG)
    tasks = [b for b in timeline.bars if b.kind == "task"]
    assert [t.label for t in tasks] == ["s1 echo", "s2 echo", "s3 echo"]
    assert all(t.children == [] and t.status == "completed" for t in tasks)
    assert timeline.status == "completed"
    memory = _row(timeline, "memory")
    assert memory.detail == "3 stored"  # the observations older code stored per task


def test_a_rejected_goal_is_its_outcome() -> None:
    timeline = _timeline("h-rejected", OLD_LOG)
    [outcome] = timeline.bars
    assert (outcome.kind, timeline.status) == ("outcome", "rejected")
    assert "unknown" in outcome.detail
    lines = render_timeline(timeline, 80)
    assert "◆" in lines[2]


def test_a_goal_still_running_draws_its_open_steps_to_the_latest_event() -> None:
    goal_events = [e for e in LLM_LOG if e.goal_id == "r-dag"]
    first_done = next(i for i, e in enumerate(goal_events) if isinstance(e, TaskCompleted))
    timeline = _timeline("r-dag", goal_events[: first_done + 1])
    assert timeline.status == "running"
    running = [b for b in timeline.bars if b.kind == "task" and b.status == "running"]
    assert [b.label for b in running] == ["a sleep"]
    assert running[0].end == timeline.end
    assert not any(isinstance(e, GoalCompleted) for e in goal_events[: first_done + 1])


def test_no_events_no_timeline() -> None:
    assert build_timeline("nobody", LLM_LOG) is None


@pytest.mark.parametrize("width", [30, 44, 60, 80, 100, 160])
@pytest.mark.parametrize(
    ("goal_id", "log"),
    [("r-llm", LLM_LOG), ("r-dag", LLM_LOG), ("h-revised", OLD_LOG), ("h-dag", OLD_LOG)],
)
def test_every_line_fits_the_terminal(width: int, goal_id: str, log: list[Event]) -> None:
    lines = render_timeline(_timeline(goal_id, log), width)
    assert all(len(line) <= width for line in lines), [ln for ln in lines if len(ln) > width]


def _plan_call_detail() -> str:
    """What the planner's model call shows: tokens, cost and latency, as recorded."""
    [answer] = [
        e
        for e in LLM_LOG
        if isinstance(e, LlmResponded) and e.goal_id == "r-llm" and e.tokens_in == 50
    ][:1]
    return f"50→20 tok ${answer.cost_usd:.4f} {answer.latency_ms:.1f} ms"


def test_a_wide_terminal_puts_details_beside_the_bars() -> None:
    timeline = _timeline("r-llm", LLM_LOG)
    lines = render_timeline(timeline, 120)
    assert len(lines) == 2 + len(timeline.rows())
    plan = next(line for line in lines if line.startswith("  └ llm plan scripted-gpt"))
    assert plan.endswith(_plan_call_detail())


def test_a_narrow_terminal_cuts_labels_and_gives_details_their_own_line() -> None:
    timeline = _timeline("r-llm", LLM_LOG)
    lines = render_timeline(timeline, 40)
    assert len(lines) > 2 + len(timeline.rows())  # details moved under their rows
    assert any(line.rstrip().endswith(_plan_call_detail()) for line in lines)
    cut = [line for line in lines if "…" in line.split(" █")[0]]
    assert cut, "a label longer than the label column is cut with an ellipsis"
    assert all(len(line) <= 40 for line in lines)


def _approval_log(answer: dict[str, str]) -> list[Event]:
    """A goal whose first call waits for a person, as the planner records it, with its events
    a second apart and two quiet seconds before the answer: the decision comes four seconds
    after the request."""
    goal = Approving(WRITE_THEN_ECHO)
    goal.accept()
    at = len(goal.log)
    goal.send("c-answer", approval_id=S1, **answer)
    if answer["decision"] == "approve":
        goal.completed("s1", "wrote 5 bytes")
    delays = [i + (2 if i >= at else 0) for i in range(len(goal.log))]
    return [
        msgspec.structs.replace(e, occurred_at=NOW + timedelta(seconds=d))
        for e, d in zip(goal.log, delays, strict=True)
    ]


def test_a_wait_for_approval_is_a_bar_from_the_request_to_the_decision() -> None:
    log = _approval_log({"decision": "approve", "by": "ada"})
    timeline = _timeline(GOAL, log)
    wait = _row(timeline, "approval s1 write_file")
    request = next(e for e in log if isinstance(e, ApprovalRequested))
    granted = next(e for e in log if isinstance(e, ApprovalGranted))
    assert (wait.start, wait.end) == (request.occurred_at, granted.occurred_at)
    assert wait.duration_ms == 4000
    assert (wait.status, wait.detail) == ("granted", "granted by ada")
    labels = _labels(timeline.rows())
    assert labels.index("approval s1 write_file") < labels.index("s1 write_file")
    line = next(line for line in render_timeline(timeline, 100) if line.startswith("approval"))
    assert "█" in line
    assert line.rstrip().endswith("granted by ada, 4.00 s")
    assert 'data-kind="approval"' in gantt_svg(timeline)
    [span] = [s for s in goal_spans(GOAL, log) if s.name == "approval write_file"]
    assert span.attributes["agora.approval.status"] == "granted"
    assert (span.start, span.end) == (wait.start, wait.end)


def test_a_denied_or_unanswered_approval_says_so() -> None:
    denied = _row(
        _timeline(GOAL, _approval_log({"decision": "deny", "reason": "not on prod"})),
        "approval s1 write_file",
    )
    assert (denied.status, denied.detail) == ("denied", "denied: not on prod")
    log = _approval_log({"decision": "approve"})
    waiting_log = [e for e in log if not isinstance(e, ApprovalAnswered | ApprovalGranted)]
    waiting_log = waiting_log[
        : next(i for i, e in enumerate(waiting_log) if isinstance(e, TaskScheduled))
    ]
    timeline = _timeline(GOAL, waiting_log)
    waiting = _row(timeline, "approval s1 write_file")
    assert (waiting.status, waiting.end) == ("waiting", timeline.end)
    assert row_detail(waiting).startswith("waiting")
