"""The trace follower's lean reading makes the very spans the timeline's reading makes.

``projections.lean_spans`` builds a goal's spans straight from a lean decoding of its events'
bytes (``projections.span_events``); ``projections.spans.goal_spans`` folds the catalogue's
events into the timeline and maps its bars. Both read the same recorded bytes here, and every
span must come out the same, field for field and attribute for attribute, in order: the
model-planned goal (ReAct task, judge, revision) and the DAG of ``llm-goal.json`` as they were
recorded (every plain call with its own ``tool_called``) and as the executor writes them now
(an instant tool's outcome carries ``called_at``), the older goals of ``history-v1.json``
(``task_started``, ``tool_returned``, retries, failures, a rejection), approvals granted and
denied, a client's trace context, cancelled and refused calls. Every prefix of each goal's
events too: the trace so far of a goal still running.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from events.catalog import (
    EVENT_TYPES,
    GoalAccepted,
    GoalCancelled,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TimerFired,
    TimerStarted,
    ToolCalled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
)
from events.codec import UPCASTERS, decode_event, encode
from events.errors import DecodeError
from events.model import Event
from projections.lean_spans import lean_goal_spans
from projections.span_events import LeanEvent, decode_span_event
from projections.spans import SpanRecord, goal_spans
from tests.unit.test_implied_calls import _as_written_now
from tests.unit.test_timeline import _approval_log
from tests.unit.test_traceparent import HEADER

DATA = Path(__file__).parents[1] / "data"
Log = list[bytes]


def _recorded(name: str) -> Log:
    record = json.loads((DATA / name).read_text(encoding="utf-8"))
    return [m["payload"].encode() for m in record["messages"]]


def _events(log: Log) -> list[Event]:
    return [decode_event(payload) for payload in log]


def _bytes(events: list[Event]) -> Log:
    return [encode(event) for event in events]


def _goal(log: Log, goal_id: str) -> list[Event]:
    return [e for e in _events(log) if e.goal_id == goal_id]


LLM = _recorded("llm-goal.json")
OLD = _recorded("history-v1.json")


def _cancel(running: list[Event]) -> list[Event]:
    """``running`` then cancelled: every task with a call interrupted, the goal cancelled."""
    last = running[-1]
    stamp = {
        "goal_id": last.goal_id,
        "occurred_at": last.occurred_at,
        "causation_id": last.event_id,
        "correlation_id": last.correlation_id,
    }
    calls = {(e.iteration, e.task_id): e for e in running if isinstance(e, ToolCalled)}
    stops = [
        TaskCancelled(
            event_id=f"cancel-{call.task_id}", producer="executor@test", **stamp,
            iteration=call.iteration, task_id=call.task_id, tool=call.tool, attempts=1,
            duration_ms=3.5, reason="cancelled by the operator: " + "x" * 60,
        )
        for call in calls.values()
    ]  # fmt: skip
    cancelled = GoalCancelled(
        event_id="cancelled", producer="planner@test", **stamp, command_id="c-cancel",
        reason="cancelled by the operator",
    )  # fmt: skip
    return [*running, *stops, cancelled]


def _cancelled(events: list[Event]) -> list[Event]:
    """The DAG cancelled while its first two tasks ran."""
    return _cancel(events[: next(i for i, e in enumerate(events) if isinstance(e, TaskCompleted))])


def _timer(call: ToolCalled, purpose: str = "sleep") -> TimerStarted:
    return TimerStarted(
        event_id=f"timer-{call.event_id}", goal_id=call.goal_id, occurred_at=call.occurred_at,
        causation_id=call.event_id, correlation_id=call.correlation_id, producer=call.producer,
        iteration=call.iteration, task_id=call.task_id, tool=call.tool, attempt=call.attempt,
        timer_id=f"timer-{call.event_id}", due_at=call.occurred_at + timedelta(hours=1),
        seconds=3600.0, purpose=purpose, step=call.step, call=call.call,
    )  # fmt: skip


def _waited(events: list[Event]) -> list[Event]:
    """The ReAct task's first call waits on a durable timer, which fires before it returns."""
    out: list[Event] = []
    timer = None
    for event in events:
        if timer is None and isinstance(event, ToolCalled) and event.step > 0:
            timer = _timer(event)
            out += [event, timer]
            continue
        if timer is not None and isinstance(event, ToolReturned) and event.step == timer.step:
            fired = TimerFired(
                event_id="fired", goal_id=event.goal_id, occurred_at=event.occurred_at,
                causation_id=timer.event_id, correlation_id=event.correlation_id,
                producer=event.producer, iteration=timer.iteration, task_id=timer.task_id,
                tool=timer.tool, attempt=timer.attempt, timer_id=timer.timer_id,
                due_at=timer.due_at, late_ms=2.0, step=timer.step, call=timer.call,
            )  # fmt: skip
            out.append(fired)
            timer = msgspec.structs.replace(timer, step=-1)  # fired once
        out.append(event)
    return out


def _cancelled_while_waiting(events: list[Event]) -> list[Event]:
    """The DAG's first sleep waits on its timer, the second on a retry's backoff (no call
    waits), when the goal is cancelled."""
    cancelled = _cancelled(events)
    first, second = (e for e in cancelled if isinstance(e, ToolCalled))
    at = cancelled.index(second) + 1
    return [*cancelled[:at], _timer(first), _timer(second, "retry"), *cancelled[at:]]


def _react_cancelled_while_waiting(events: list[Event]) -> list[Event]:
    """The ReAct task cancelled while its first call waits on its timer."""
    waited = _waited(events)
    timer = next(i for i, e in enumerate(waited) if isinstance(e, TimerStarted))
    return _cancel(waited[: timer + 1])


def _refused(events: list[Event]) -> list[Event]:
    """The ReAct task's model asks for a tool it was not granted before its first call."""
    at = next(i for i, e in enumerate(events) if isinstance(e, ToolCalled) and e.step > 0)
    call = events[at]
    assert isinstance(call, ToolCalled)
    refusal = ToolRefused(
        event_id="refused", goal_id=call.goal_id, occurred_at=call.occurred_at,
        causation_id=call.causation_id, correlation_id=call.correlation_id,
        producer=call.producer, iteration=call.iteration, task_id=call.task_id,
        tool="write_file", step=call.step, call=call.call + 1, args={"path": "/etc"},
        reason="write_file is not among the tools granted to this task",
    )  # fmt: skip
    return [*events[:at], refusal, *events[at:]]


def _long_errors(events: list[Event]) -> list[Event]:
    """Errors over several lines and longer than a status line shows."""
    error = "Traceback (most recent call last):\n  " + "frame\n  " * 20 + "ZeroDivisionError"
    return [
        msgspec.structs.replace(e, error=error) if isinstance(e, ToolFailed | TaskFailed) else e
        for e in events
    ]


def _traced(events: list[Event]) -> list[Event]:
    return [
        msgspec.structs.replace(e, traceparent=HEADER) if isinstance(e, GoalAccepted) else e
        for e in events
    ]


# Each case: a goal and its log's bytes.
CASES: dict[str, tuple[str, Log]] = {
    "r-llm as recorded": ("r-llm", LLM),
    "r-dag as recorded": ("r-dag", LLM),
    "r-llm as written now": ("r-llm", _bytes(_as_written_now(_goal(LLM, "r-llm")))),
    "r-dag as written now": ("r-dag", _bytes(_as_written_now(_goal(LLM, "r-dag")))),
    **{
        f"{goal_id} (older)": (goal_id, OLD)
        for goal_id in dict.fromkeys(e.goal_id for e in _events(OLD))
    },
    "a failed call as written now": (
        "h-toolfail",
        _bytes(_as_written_now(_goal(OLD, "h-toolfail"))),
    ),
    "approval granted": ("g-loop", _bytes(_approval_log({"decision": "approve", "by": "ada"}))),
    "approval denied": ("g-loop", _bytes(_approval_log({"decision": "deny", "reason": "no"}))),
    "long errors": ("h-toolfail", _bytes(_long_errors(_goal(OLD, "h-toolfail")))),
    "client's trace": ("r-llm", _bytes(_traced(_goal(LLM, "r-llm")))),
    "cancelled calls": ("r-dag", _bytes(_cancelled(_goal(LLM, "r-dag")))),
    "a call on a durable timer": ("r-llm", _bytes(_waited(_goal(LLM, "r-llm")))),
    "cancelled while waiting": ("r-dag", _bytes(_cancelled_while_waiting(_goal(LLM, "r-dag")))),
    "ReAct cancelled while waiting": (
        "r-llm",
        _bytes(_react_cancelled_while_waiting(_goal(LLM, "r-llm"))),
    ),
    "refused call": ("r-llm", _bytes(_refused(_goal(LLM, "r-llm")))),
}


def _shape(records: list[SpanRecord]) -> list[tuple[SpanRecord, list[tuple[str, object]]]]:
    """The records, and their attributes in order (what the encoder writes, in that order)."""
    return [(r, list(r.attributes.items())) for r in records]


def _both(goal_id: str, log: Log) -> tuple[list[SpanRecord], list[SpanRecord]]:
    lean = lean_goal_spans(goal_id, [decode_span_event(payload) for payload in log])
    return lean, goal_spans(goal_id, _events(log))


@pytest.mark.parametrize("case", CASES)
def test_the_lean_reading_makes_the_timelines_spans(case: str) -> None:
    goal_id, log = CASES[case]
    lean, full = _both(goal_id, log)
    assert len(full) > 1 or case == "h-rejected (older)"
    assert _shape(lean) == _shape(full)
    mine = [p for p in log if decode_span_event(p).goal_id == goal_id]
    for end in range(len(mine)):  # the trace so far, after each of its events
        lean, full = _both(goal_id, mine[:end])
        assert _shape(lean) == _shape(full), f"after {end} events"


def test_the_cases_cover_every_kind_of_span_and_error() -> None:
    names = set()
    statuses = set()
    for goal_id, log in CASES.values():
        for record in _both(goal_id, log)[0]:
            names.add(record.name.split()[0])
            statuses.add((record.status, record.attributes.get("error.type")))
    assert names == {
        "invoke_workflow",
        "invoke_agent",
        "retrieval",
        "chat",
        "execute_tool",
        "approval",
    }
    assert {
        ("error", "goal_failed"),
        ("error", "goal_cancelled"),
        ("error", "goal_rejected"),
    } <= statuses
    assert {("error", "failed"), ("error", "cancelled"), ("error", "tool_refused")} <= statuses


def test_every_field_read_leanly_is_the_catalogues_field() -> None:
    """Same name, type and default: an event reads the same either way, and an event the
    catalogue refuses for a missing field is refused here too."""
    lean_types = {
        cls.__struct_config__.tag: cls
        for cls in LeanEvent.__subclasses__()
        if cls.__struct_config__.tag is not None
    }
    assert set(lean_types) == set(EVENT_TYPES)  # every type of the catalogue, no other
    for tag, lean in lean_types.items():
        catalogue = {f.name: f for f in msgspec.structs.fields(EVENT_TYPES[tag])}
        for lean_field in msgspec.structs.fields(lean):
            theirs = catalogue[lean_field.name]
            assert lean_field.required == theirs.required, (tag, lean_field.name)
            assert lean_field.default == theirs.default, (tag, lean_field.name)
            if lean_field.name != "items":  # context items: counted, never decoded
                assert lean_field.type == theirs.type, (tag, lean_field.name)


def test_no_upcaster_is_left_out() -> None:
    """The lean reading decodes each schema version as it is: an upcaster registered in the
    codec must be applied by the lean reading too (then change this test)."""
    assert UPCASTERS == {}


def _completed_without(field: bytes) -> bytes:
    payload = next(p for p in LLM if b'"task_completed"' in p)
    return payload.replace(b'"' + field + b'"', b'"not_' + field + b'"')


def test_an_event_of_a_type_this_version_lacks_reads_as_its_envelope_and_makes_no_span() -> None:
    """A newer producer's event does not stop the lean reading: it is read as its envelope
    only (the catalogue refuses it)."""
    goal = [p for p in LLM if decode_span_event(p).goal_id == "r-llm"]
    newer = json.loads(goal[5])
    newer.update(type="goal_pondered", event_id="newer", thoughts=[{"deep": True}])
    with pytest.raises(DecodeError):
        decode_event(json.dumps(newer).encode())
    read = decode_span_event(json.dumps(newer).encode())
    assert type(read) is LeanEvent
    assert (read.event_id, read.goal_id) == ("newer", "r-llm")
    with_it = [*goal[:6], json.dumps(newer).encode(), *goal[6:]]
    lean = lean_goal_spans("r-llm", [decode_span_event(p) for p in with_it])
    assert _shape(lean) == _shape(goal_spans("r-llm", _events(goal)))


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b'{"type": "no_such_event", "event_id": "e"}',  # no envelope
        LLM[0].replace(b'"goal_id"', b'"goal"'),  # a required field missing
        _completed_without(b"attempts"),  # a field of a known type missing
        _completed_without(b"type"),  # no type at all
        b"[" * 10_000,
        b"\xff\xfe",
    ],
)
def test_what_the_catalogue_refuses_the_lean_reading_refuses(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(payload)
    with pytest.raises(DecodeError, match="not a valid agora event"):
        decode_span_event(payload)
