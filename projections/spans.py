"""A goal's events as OpenTelemetry spans that follow the GenAI semantic conventions.

Pure: a goal's events in, span records out; no SDK, no clock, no I/O (``infra.traces`` turns
the records into the SDK's spans and exports them). The steps are the timeline's
(``projections.timeline``), so a trace and ``agora trajectory --timeline`` always agree.

The conventions followed are OpenTelemetry semantic conventions **v1.41.0**, GenAI
(status Development): the last release that carried them before they moved to their own
repository. What each step becomes:

| step | span | kind | gen_ai.operation.name |
|---|---|---|---|
| the goal (the root) | ``invoke_workflow agora`` | INTERNAL | ``invoke_workflow`` |
| a plan or revision | ``invoke_agent planner`` | INTERNAL | ``invoke_agent`` |
| memory answering a context request | ``retrieval agora-memory`` | INTERNAL | ``retrieval`` |
| a task | ``invoke_agent executor`` | INTERNAL | ``invoke_agent`` |
| a judgement | ``invoke_agent evaluator`` | INTERNAL | ``invoke_agent`` |
| a model call | ``chat {gen_ai.request.model}`` | CLIENT | ``chat`` |
| a tool call | ``execute_tool {gen_ai.tool.name}`` | INTERNAL | ``execute_tool`` |
| a call waiting for a person's approval | ``approval {gen_ai.tool.name}`` | INTERNAL | (none) |

Every span carries ``gen_ai.conversation.id`` = the goal id. Ids are derived from event ids
(the trace id from the goal id, a span id from the event that opened its step), so exporting a
goal again, from a backfill or another follower, produces the very same spans. A goal whose
client sent a W3C ``traceparent`` takes the client's trace id instead, its root span a child
of the client's span. Prompts,
completions, tool arguments and outputs are content: only with ``content=True``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import msgspec

from events.catalog import GoalAccepted, GoalRejected
from events.model import Event
from events.trace_context import TraceParent, parse_traceparent
from projections.timeline import Bar, Timeline, build_timeline

__all__ = [
    "CONVENTION_VERSION",
    "SCHEMA_URL",
    "WORKFLOW_NAME",
    "AttributeValue",
    "SpanRecord",
    "client_trace",
    "goal_spans",
    "span_id_of",
    "trace_id_of",
]

CONVENTION_VERSION = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{CONVENTION_VERSION}"
WORKFLOW_NAME = "agora"
MEMORY_SOURCE = "agora-memory"
AttributeValue = str | int | float | bool | tuple[str, ...]
SpanKind = Literal["internal", "client"]
StatusCode = Literal["unset", "ok", "error"]

# Attribute names (semantic conventions v1.41.0; tests check them against the
# opentelemetry-semantic-conventions package's constants).
OPERATION = "gen_ai.operation.name"
CONVERSATION = "gen_ai.conversation.id"
PROVIDER = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
WORKFLOW = "gen_ai.workflow.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_NAME = "gen_ai.tool.name"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
DATA_SOURCE = "gen_ai.data_source.id"
QUERY_TEXT = "gen_ai.retrieval.query.text"
ERROR_TYPE = "error.type"
# agora's own: what the conventions have no name for.
COST = "agora.usage.cost_usd"
GOAL_STATUS = "agora.goal.status"
# The statuses of a step that make its span an error.
_ERRORS = ("failed", "refused", "cancelled")
# The steps that are an agent's turn, by kind, and the agent's name.
_AGENTS = {"plan": "planner", "task": "executor", "evaluation": "evaluator"}
# The facts of a step that its invoke_agent span carries, and their attribute names.
_AGENT_FACTS = tuple(
    (fact, f"agora.{fact}")
    for fact in ("task_id", "iteration", "strategy", "verdict", "score", "tool")
)


class SpanRecord(msgspec.Struct, frozen=True):
    """One span, as the SDK will be told it: ids are ints (128-bit trace, 64-bit span).

    A msgspec struct rather than a frozen dataclass: a goal makes about ten, and a frozen
    dataclass's ``__init__`` costs several times as much."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    name: str
    kind: SpanKind
    start: datetime
    end: datetime
    attributes: dict[str, AttributeValue] = {}
    status: StatusCode = "unset"
    status_message: str = ""


def _digest(text: str, nbytes: int) -> int:
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:nbytes], "big")
    return value or 1  # an all-zero id is invalid in OpenTelemetry


def trace_id_of(goal_id: str) -> int:
    """The goal's trace id: the same goal always makes the same trace."""
    return _digest(f"agora-trace/{goal_id}", 16)


def span_id_of(event_id: str, role: str = "") -> int:
    """A span id from the id of the event that opened the step (``role`` tells apart spans
    opened by one event)."""
    return _digest(f"agora-span/{event_id}/{role}", 8)


def _text(facts: dict[str, str | int | float], name: str) -> str:
    value = facts.get(name)
    return value if isinstance(value, str) else ""


def _messages(role: str, text: str) -> str:
    """Content in the conventions' message shape: a JSON array of messages with parts."""
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


@dataclass
class _Mapper:
    goal_id: str
    content: bool
    trace_id: int
    spans: list[SpanRecord] = field(default_factory=list)

    def add(
        self,
        span_id: int,
        parent: int,
        name: str,
        bar: Bar,
        attributes: dict[str, AttributeValue],
        *,
        kind: SpanKind = "internal",
    ) -> None:
        status: StatusCode = "unset"
        message = ""
        if bar.status in _ERRORS:
            status, message = "error", bar.error or bar.status
            attributes[ERROR_TYPE] = "tool_refused" if bar.status == "refused" else bar.status
        attributes[CONVERSATION] = self.goal_id
        self.spans.append(
            SpanRecord(
                self.trace_id,
                span_id,
                parent,
                name,
                kind,
                bar.start,
                bar.end,
                attributes,
                status,
                message,
            )
        )

    def agent(self, bar: Bar, parent: int, name: str) -> int:
        span_id = span_id_of(bar.event_id, "agent")
        attributes: dict[str, AttributeValue] = {OPERATION: "invoke_agent", AGENT_NAME: name}
        facts = bar.facts
        for fact, key in _AGENT_FACTS:
            if fact in facts:
                attributes[key] = facts[fact]
        if self.content and bar.kind == "task" and "output" in bar.facts:
            attributes["agora.task.output"] = _text(bar.facts, "output")
        self.add(span_id, parent, f"invoke_agent {name}", bar, attributes)
        return span_id

    def chat(self, bar: Bar, parent: int) -> None:
        model = _text(bar.facts, "request_model") or _text(bar.facts, "model") or "unknown"
        attributes: dict[str, AttributeValue] = {
            OPERATION: "chat",
            PROVIDER: _text(bar.facts, "provider") or "unknown",
            REQUEST_MODEL: model,
            INPUT_TOKENS: bar.tokens_in,
            OUTPUT_TOKENS: bar.tokens_out,
            COST: bar.cost_usd,
            "agora.llm.purpose": _text(bar.facts, "purpose"),
        }
        if _text(bar.facts, "model"):
            attributes[RESPONSE_MODEL] = _text(bar.facts, "model")
        if _text(bar.facts, "finish_reason"):
            attributes[FINISH_REASONS] = (_text(bar.facts, "finish_reason"),)
        if self.content:
            attributes[INPUT_MESSAGES] = _messages("user", _text(bar.facts, "prompt"))
            attributes[OUTPUT_MESSAGES] = _messages("assistant", _text(bar.facts, "completion"))
        span_id = span_id_of(bar.event_id, "chat")
        self.add(span_id, parent, f"chat {model}", bar, attributes, kind="client")

    def tool(self, bar: Bar, parent: int, *, role: str = "tool") -> None:
        tool = _text(bar.facts, "tool") or "unknown"
        attributes: dict[str, AttributeValue] = {
            OPERATION: "execute_tool",
            TOOL_NAME: tool,
            # Tools from MCP servers are named <server>.<tool>; built-ins run in the executor.
            TOOL_TYPE: "extension" if "." in tool else "function",
            TOOL_CALL_ID: _text(bar.facts, "call_event_id") or bar.event_id,
        }
        if bar.tool_ms is not None:
            attributes["agora.tool.duration_ms"] = bar.tool_ms
        if self.content:
            attributes[TOOL_ARGUMENTS] = _text(bar.facts, "args")
            if "output" in bar.facts:
                attributes[TOOL_RESULT] = _text(bar.facts, "output")
        self.add(span_id_of(bar.event_id, role), parent, f"execute_tool {tool}", bar, attributes)

    def retrieval(self, bar: Bar, parent: int) -> None:
        attributes: dict[str, AttributeValue] = {OPERATION: "retrieval", DATA_SOURCE: MEMORY_SOURCE}
        if "items" in bar.facts:
            attributes["agora.memory.items"] = bar.facts["items"]
        if self.content:
            attributes[QUERY_TEXT] = _text(bar.facts, "query")
        span_id = span_id_of(bar.event_id, "retrieval")
        self.add(span_id, parent, f"retrieval {MEMORY_SOURCE}", bar, attributes)

    def approval(self, bar: Bar, parent: int) -> None:
        """A call's wait for a person: no GenAI operation, so agora's own attributes."""
        attributes: dict[str, AttributeValue] = {
            TOOL_NAME: _text(bar.facts, "tool"),
            "agora.task_id": _text(bar.facts, "task_id"),
            "agora.approval.status": bar.status,
        }
        if _text(bar.facts, "by"):
            attributes["agora.approval.by"] = _text(bar.facts, "by")
        span_id = span_id_of(bar.event_id, "approval")
        self.add(span_id, parent, f"approval {_text(bar.facts, 'tool')}", bar, attributes)

    def step(self, bar: Bar, parent: int) -> None:
        """A bar and what it nests, below ``parent``."""
        if bar.kind == "approval":
            self.approval(bar, parent)
            return
        if bar.kind == "llm":
            self.chat(bar, parent)
            return
        if bar.kind == "tool":
            self.tool(bar, parent)
            return
        if bar.kind == "context":
            self.retrieval(bar, parent)
            return
        agent = _AGENTS.get(bar.kind)
        if agent is None:
            return  # instants (memory writes, the outcome) and pauses are not spans
        span_id = self.agent(bar, parent, agent)
        children = sorted(bar.children, key=lambda b: b.start)
        plain = bar.kind == "task" and not any(c.kind == "tool" for c in children)
        if plain and (bar.status != "cancelled" or bar.tool_ms):
            self.tool(bar, span_id, role="call")  # a plain task's one call is its run
        for child in children:
            self.step(child, span_id)


def client_trace(events: Iterable[Event]) -> TraceParent | None:
    """The trace context the goal's client sent with it (on its acceptance or rejection)."""
    for event in events:
        if isinstance(event, GoalAccepted | GoalRejected):
            return parse_traceparent(event.traceparent)
    return None


def goal_spans(goal_id: str, events: Iterable[Event], *, content: bool = False) -> list[SpanRecord]:
    """The goal's trace: its root ``invoke_workflow`` span first, then every step's span.
    When the client sent a ``traceparent``, the trace is the client's and the root a child of
    the client's span."""
    events = list(events)
    timeline = build_timeline(goal_id, events)
    if timeline is None:
        return []
    mine = [event for event in events if event.goal_id == goal_id]
    return timeline_spans(timeline, content=content, parent=client_trace(mine))


def timeline_spans(
    timeline: Timeline, *, content: bool = False, parent: TraceParent | None = None
) -> list[SpanRecord]:
    trace_id = parent.trace_id if parent is not None else trace_id_of(timeline.goal_id)
    mapper = _Mapper(timeline.goal_id, content, trace_id)
    root = span_id_of(timeline.first_event_id, "workflow")
    attributes: dict[str, AttributeValue] = {
        OPERATION: "invoke_workflow",
        WORKFLOW: WORKFLOW_NAME,
        GOAL_STATUS: timeline.status,
        INPUT_TOKENS: timeline.tokens_in,
        OUTPUT_TOKENS: timeline.tokens_out,
        COST: timeline.cost_usd,
    }
    if isinstance(timeline.facts.get("score"), float | int):
        attributes["agora.goal.score"] = timeline.facts["score"]
    if content and _text(timeline.facts, "text"):
        attributes[INPUT_MESSAGES] = _messages("user", _text(timeline.facts, "text"))
    if content and _text(timeline.facts, "result"):
        attributes[OUTPUT_MESSAGES] = _messages("assistant", _text(timeline.facts, "result"))
    attributes[CONVERSATION] = timeline.goal_id
    status: StatusCode = "unset"
    message = ""
    if timeline.status in ("failed", "rejected", "cancelled"):
        status, message = "error", _text(timeline.facts, "reason") or timeline.status
        attributes[ERROR_TYPE] = f"goal_{timeline.status}"
    elif timeline.status == "completed":
        status = "ok"
    mapper.spans.append(
        SpanRecord(
            trace_id,
            root,
            parent.span_id if parent is not None else None,
            f"invoke_workflow {WORKFLOW_NAME}",
            "internal",
            timeline.start,
            timeline.end,
            attributes,
            status,
            message,
        )
    )
    for bar in timeline.bars:
        mapper.step(bar, root)
    return mapper.spans
