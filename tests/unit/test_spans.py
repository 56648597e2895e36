"""A goal's events as GenAI spans (projections.spans), on recorded logs, and their SDK form."""

from __future__ import annotations

import json

import pytest
from opentelemetry.semconv._incubating.attributes import error_attributes as errors
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import SpanKind, StatusCode

from events.catalog import LlmResponded, ToolCalled
from events.errors import ConfigurationError
from infra.settings import Settings
from infra.traces.otlp import to_readable_spans
from projections import spans as conv
from projections.spans import SpanRecord, goal_spans, span_id_of, trace_id_of
from tests.unit.test_timeline import LLM_LOG, OLD_LOG


def _by_id(records: list[SpanRecord]) -> dict[int, SpanRecord]:
    return {r.span_id: r for r in records}


def _parent_name(record: SpanRecord, records: list[SpanRecord]) -> str | None:
    if record.parent_span_id is None:
        return None
    return _by_id(records)[record.parent_span_id].name


def test_a_goal_is_one_trace_under_one_invoke_workflow_root() -> None:
    records = goal_spans("r-llm", LLM_LOG)
    root = records[0]
    assert root.name == "invoke_workflow agora"
    assert root.parent_span_id is None
    assert root.attributes[conv.OPERATION] == "invoke_workflow"
    assert root.attributes[conv.WORKFLOW] == "agora"
    assert root.status == "ok"
    assert {r.trace_id for r in records} == {trace_id_of("r-llm")}
    assert all(r.attributes[conv.CONVERSATION] == "r-llm" for r in records)
    assert len({r.span_id for r in records}) == len(records)
    for record in records[1:]:  # every other span hangs off a span of the same trace
        assert record.parent_span_id in _by_id(records)
        parent = _by_id(records)[record.parent_span_id]
        assert parent.start <= record.start


def test_turns_model_calls_and_tool_calls_have_their_conventional_names_and_parents() -> None:
    records = goal_spans("r-llm", LLM_LOG)
    shape = [(r.name, _parent_name(r, records)) for r in records]
    assert shape == [
        ("invoke_workflow agora", None),
        ("retrieval agora-memory", "invoke_workflow agora"),
        ("invoke_agent planner", "invoke_workflow agora"),
        ("chat scripted-openai", "invoke_agent planner"),
        ("invoke_agent executor", "invoke_workflow agora"),
        ("chat scripted-openai", "invoke_agent executor"),
        ("execute_tool calculator", "invoke_agent executor"),
        ("chat scripted-openai", "invoke_agent executor"),
        ("execute_tool echo", "invoke_agent executor"),
        ("chat scripted-openai", "invoke_agent executor"),
        ("invoke_agent evaluator", "invoke_workflow agora"),
        ("chat scripted-openai", "invoke_agent evaluator"),
        ("invoke_agent planner", "invoke_workflow agora"),
        ("chat scripted-openai", "invoke_agent planner"),
        ("invoke_agent executor", "invoke_workflow agora"),
        ("execute_tool calculator", "invoke_agent executor"),
        ("invoke_agent executor", "invoke_workflow agora"),
        ("execute_tool echo", "invoke_agent executor"),
        ("invoke_agent evaluator", "invoke_workflow agora"),
        ("chat scripted-openai", "invoke_agent evaluator"),
    ]
    chats = [r for r in records if r.name.startswith("chat ")]
    assert {r.kind for r in chats} == {"client"}
    answers = [e for e in LLM_LOG if isinstance(e, LlmResponded) and e.goal_id == "r-llm"]
    for chat, answer in zip(chats, answers, strict=True):
        assert chat.attributes[conv.OPERATION] == "chat"
        assert chat.attributes[conv.PROVIDER] == answer.provider == "openai"
        assert chat.attributes[conv.REQUEST_MODEL] == answer.request_model
        assert chat.attributes[conv.RESPONSE_MODEL] == answer.model
        assert chat.attributes[conv.INPUT_TOKENS] == answer.tokens_in
        assert chat.attributes[conv.OUTPUT_TOKENS] == answer.tokens_out
        assert chat.attributes[conv.FINISH_REASONS] == (answer.finish_reason,)
        assert chat.attributes[conv.COST] == answer.cost_usd
    assert [c.attributes["agora.llm.purpose"] for c in chats] == [
        "plan", "react", "react", "react", "judge", "revise", "judge"
    ]  # fmt: skip
    agents = [r for r in records if r.name.startswith("invoke_agent ")]
    assert {r.attributes[conv.AGENT_NAME] for r in agents} == {"planner", "executor", "evaluator"}
    tools = [r for r in records if r.name.startswith("execute_tool ")]
    calls = [e for e in LLM_LOG if isinstance(e, ToolCalled) and e.goal_id == "r-llm"]
    assert [t.attributes[conv.TOOL_NAME] for t in tools] == [c.tool for c in calls]
    assert [t.attributes[conv.TOOL_CALL_ID] for t in tools] == [c.event_id for c in calls]
    assert {t.attributes[conv.TOOL_TYPE] for t in tools} == {"function"}


def test_tokens_and_cost_on_the_spans_add_up_to_the_goals() -> None:
    records = goal_spans("r-llm", LLM_LOG)
    root, chats = records[0], [r for r in records if r.name.startswith("chat ")]
    answers = [e for e in LLM_LOG if isinstance(e, LlmResponded) and e.goal_id == "r-llm"]
    for name, per_answer in (
        (conv.INPUT_TOKENS, [a.tokens_in for a in answers]),
        (conv.OUTPUT_TOKENS, [a.tokens_out for a in answers]),
    ):
        assert sum(int(c.attributes[name]) for c in chats) == root.attributes[name]
        assert root.attributes[name] == sum(per_answer)
    assert sum(float(c.attributes[conv.COST]) for c in chats) == pytest.approx(
        float(root.attributes[conv.COST])
    )


def test_ids_come_from_the_log_so_an_export_is_the_same_every_time() -> None:
    first = goal_spans("r-llm", LLM_LOG)
    again = goal_spans("r-llm", list(LLM_LOG))
    assert [(r.trace_id, r.span_id, r.parent_span_id) for r in first] == [
        (r.trace_id, r.span_id, r.parent_span_id) for r in again
    ]
    other = goal_spans("r-dag", LLM_LOG)
    assert {r.trace_id for r in other} != {r.trace_id for r in first}
    assert not {r.span_id for r in other} & {r.span_id for r in first}
    assert span_id_of("e-1", "chat") != span_id_of("e-1", "agent")
    assert 0 < trace_id_of("g") < 2**128
    assert 0 < span_id_of("e") < 2**64


def test_content_is_exported_only_when_asked_for() -> None:
    content_keys = {
        conv.INPUT_MESSAGES,
        conv.OUTPUT_MESSAGES,
        conv.TOOL_ARGUMENTS,
        conv.TOOL_RESULT,
    }
    plain = goal_spans("r-llm", LLM_LOG)
    assert not any(content_keys & set(r.attributes) for r in plain)
    assert not any("agora.task.output" in r.attributes for r in plain)
    full = goal_spans("r-llm", LLM_LOG, content=True)
    chat = next(r for r in full if r.name.startswith("chat "))
    [message] = json.loads(str(chat.attributes[conv.OUTPUT_MESSAGES]))
    assert message["role"] == "assistant"
    assert message["parts"][0]["type"] == "text"
    tool = next(r for r in full if r.name == "execute_tool calculator")
    assert json.loads(str(tool.attributes[conv.TOOL_ARGUMENTS])) == {"expression": "17*23"}
    assert tool.attributes[conv.TOOL_RESULT] == "391"


def test_parallel_tasks_are_sibling_spans_over_the_same_time() -> None:
    records = goal_spans("r-dag", LLM_LOG)
    executors = [r for r in records if r.name == "invoke_agent executor"]
    a, b, c = (next(r for r in executors if r.attributes["agora.task_id"] == t) for t in "abc")
    assert a.parent_span_id == b.parent_span_id == records[0].span_id
    assert a.start < b.end
    assert b.start < a.end
    assert c.start >= max(a.end, b.end)
    sleeps = [r for r in records if r.name == "execute_tool sleep"]
    assert {r.parent_span_id for r in sleeps} == {a.span_id, b.span_id}


def test_failures_mark_their_spans_and_the_trace_as_errors() -> None:
    records = goal_spans("h-toolfail", OLD_LOG)
    root = records[0]
    assert (root.status, root.attributes[conv.ERROR_TYPE]) == ("error", "goal_failed")
    executor = next(r for r in records if r.name == "invoke_agent executor")
    tool = next(r for r in records if r.name == "execute_tool calculator")
    for span in (executor, tool):
        assert span.status == "error"
        assert "division by zero" in span.status_message.lower()
    retried = goal_spans("h-revised", OLD_LOG)
    attempts = [r for r in retried if r.name == "execute_tool sleep"]
    assert [r.status for r in attempts] == ["error", "error", "error", "unset"]


def test_a_rejected_goal_is_a_trace_of_one_span() -> None:
    [root] = goal_spans("h-rejected", OLD_LOG)
    assert root.status == "error"
    assert root.attributes[conv.GOAL_STATUS] == "rejected"
    assert goal_spans("nobody", OLD_LOG) == []


def test_the_attribute_names_are_the_conventions() -> None:
    assert (conv.OPERATION, conv.CONVERSATION, conv.PROVIDER, conv.AGENT_NAME) == (
        gen_ai.GEN_AI_OPERATION_NAME,
        gen_ai.GEN_AI_CONVERSATION_ID,
        gen_ai.GEN_AI_PROVIDER_NAME,
        gen_ai.GEN_AI_AGENT_NAME,
    )
    assert (conv.REQUEST_MODEL, conv.RESPONSE_MODEL, conv.FINISH_REASONS) == (
        gen_ai.GEN_AI_REQUEST_MODEL,
        gen_ai.GEN_AI_RESPONSE_MODEL,
        gen_ai.GEN_AI_RESPONSE_FINISH_REASONS,
    )
    assert (conv.INPUT_TOKENS, conv.OUTPUT_TOKENS) == (
        gen_ai.GEN_AI_USAGE_INPUT_TOKENS,
        gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS,
    )
    assert (conv.INPUT_MESSAGES, conv.OUTPUT_MESSAGES, conv.WORKFLOW) == (
        gen_ai.GEN_AI_INPUT_MESSAGES,
        gen_ai.GEN_AI_OUTPUT_MESSAGES,
        gen_ai.GEN_AI_WORKFLOW_NAME,
    )
    assert (conv.TOOL_NAME, conv.TOOL_TYPE, conv.TOOL_CALL_ID) == (
        gen_ai.GEN_AI_TOOL_NAME,
        gen_ai.GEN_AI_TOOL_TYPE,
        gen_ai.GEN_AI_TOOL_CALL_ID,
    )
    assert (conv.TOOL_ARGUMENTS, conv.TOOL_RESULT, conv.DATA_SOURCE) == (
        gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS,
        gen_ai.GEN_AI_TOOL_CALL_RESULT,
        gen_ai.GEN_AI_DATA_SOURCE_ID,
    )
    assert conv.ERROR_TYPE == errors.ERROR_TYPE
    operations = {v.value for v in gen_ai.GenAiOperationNameValues}
    assert {"invoke_workflow", "invoke_agent", "chat", "execute_tool", "retrieval"} <= operations


def test_the_sdk_spans_keep_the_ids_parents_kinds_and_times() -> None:
    records = goal_spans("r-llm", LLM_LOG)
    spans = to_readable_spans(records, "0.1.0")
    for record, span in zip(records, spans, strict=True):
        assert span.context is not None
        assert (span.context.trace_id, span.context.span_id) == (record.trace_id, record.span_id)
        assert (span.parent.span_id if span.parent else None) == record.parent_span_id
        assert span.name == record.name
        assert span.start_time is not None
        assert span.end_time is not None
        assert span.start_time <= span.end_time
    assert spans[0].status.status_code is StatusCode.OK
    chat = next(s for s in spans if s.name.startswith("chat "))
    assert chat.kind is SpanKind.CLIENT
    assert chat.attributes is not None
    assert chat.attributes[conv.FINISH_REASONS] == ("stop",)
    assert spans[0].resource.attributes["service.name"] == "agora"
    assert spans[0].instrumentation_scope is not None
    assert spans[0].instrumentation_scope.schema_url == conv.SCHEMA_URL


def test_the_receiver_comes_from_the_standard_variables() -> None:
    def otlp(env: dict[str, str]) -> tuple[str, str]:
        target = Settings.from_env(env).otlp
        return target.protocol, target.url

    assert otlp({}) == ("http/protobuf", "http://localhost:4318/v1/traces")
    assert otlp({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"})[1] == "http://c:4318/v1/traces"
    traces_only = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "y",
    }
    assert otlp(traces_only)[1] == "http://t/x"
    assert otlp({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == ("grpc", "http://localhost:4317")
    both = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    }
    assert otlp(both)[0] == "http/protobuf"
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"):
        otlp({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
