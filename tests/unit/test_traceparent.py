"""W3C trace context: parsing ``traceparent``, the planner keeping it on the goal's first
event, and the goal's trace joining the client's (its trace id, the root a child of the
client's span), on recorded logs."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from events.catalog import GoalAccepted, GoalRejected
from events.commands import parse_goal_command
from events.trace_context import TraceParent, parse_traceparent
from infra.traces.otlp import to_readable_spans
from projections.spans import goal_spans, trace_id_of
from services.planner.intake import accept_goal
from tests.unit.test_timeline import LLM_LOG, OLD_LOG

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
HEADER = f"00-{TRACE}-{SPAN}-01"


@pytest.mark.parametrize(
    "value",
    [
        "",
        None,
        f"00-{TRACE}-{SPAN}",  # no flags
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper-case hex
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"ff-{TRACE}-{SPAN}-01",  # the forbidden version
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has four fields
        f"00-{TRACE}x-{SPAN}-01",
        "x" * 10_000,
    ],
)
def test_a_traceparent_that_is_not_w3c_trace_context_names_no_parent(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_a_traceparent_parses_to_its_ids_and_normalizes() -> None:
    parsed = parse_traceparent(f" {HEADER} ")
    assert parsed == TraceParent(int(TRACE, 16), int(SPAN, 16), 1)
    assert parsed.header() == HEADER
    future = parse_traceparent(f"01-{TRACE}-{SPAN}-00-more")  # a later version: its 4 fields
    assert future is not None
    assert future.header() == f"00-{TRACE}-{SPAN}-00"


def _decide(body: dict[str, object], traceparent: str | None) -> list[object]:
    parsed = parse_goal_command(
        msgspec.json.encode(body), fallback_command_id="c-1", max_bytes=1 << 20
    )
    return list(
        accept_goal(
            parsed,
            None,
            tools={},
            now=datetime(2026, 1, 1, tzinfo=UTC),
            producer="planner@test",
            traceparent=traceparent,
        )
    )


def test_the_planner_keeps_a_valid_traceparent_on_the_acceptance_or_rejection() -> None:
    [accepted] = _decide({"goal_id": "g-1", "text": "hello"}, HEADER)
    assert isinstance(accepted, GoalAccepted)
    assert accepted.traceparent == HEADER
    [rejected] = _decide({"goal_id": "g-2", "text": ""}, HEADER)
    assert isinstance(rejected, GoalRejected)
    assert rejected.traceparent == HEADER
    [untraced] = _decide({"goal_id": "g-3", "text": "hello"}, "garbage")
    assert isinstance(untraced, GoalAccepted)
    assert untraced.traceparent is None


def _traced(log: list[object], goal_id: str) -> list[object]:
    return [
        msgspec.structs.replace(e, traceparent=HEADER)
        if isinstance(e, GoalAccepted | GoalRejected) and e.goal_id == goal_id
        else e
        for e in log
        if getattr(e, "goal_id", None) == goal_id
    ]


@pytest.mark.parametrize(("goal_id", "log"), [("r-llm", LLM_LOG), ("h-rejected", OLD_LOG)])
def test_a_traced_goal_is_in_the_clients_trace_under_the_clients_span(
    goal_id: str, log: list[object]
) -> None:
    own = goal_spans(goal_id, [e for e in log if getattr(e, "goal_id", None) == goal_id])
    joined = goal_spans(goal_id, _traced(log, goal_id))  # type: ignore[arg-type]
    assert {r.trace_id for r in own} == {trace_id_of(goal_id)}
    assert {r.trace_id for r in joined} == {int(TRACE, 16)}
    assert joined[0].parent_span_id == int(SPAN, 16)
    # Everything else keeps its ids and parents: only the trace and the root's parent move.
    assert [(r.span_id, r.parent_span_id) for r in joined[1:]] == [
        (r.span_id, r.parent_span_id) for r in own[1:]
    ]
    sdk = to_readable_spans(joined, "test")
    assert sdk[0].parent is not None
    assert sdk[0].parent.is_remote  # the client's span, in another process
    assert all(s.parent is not None and not s.parent.is_remote for s in sdk[1:])
