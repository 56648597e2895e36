"""agora's own OTLP encoding of span records is the SDK encoder's, message for message."""

from __future__ import annotations

import msgspec
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from infra.traces.otlp import agora_resource, to_readable_spans
from infra.traces.otlp_encoding import SpanEncoder, encode_attribute_value
from projections.spans import SpanRecord, goal_spans
from tests.unit.test_timeline import LLM_LOG, OLD_LOG
from tests.unit.test_traceparent import _traced


def _goal(log: list[object], goal_id: str) -> list[object]:
    return [e for e in log if getattr(e, "goal_id", None) == goal_id]


def _batches() -> dict[str, list[SpanRecord]]:
    return {
        "llm goal": goal_spans("r-llm", LLM_LOG),
        "llm goal with content": goal_spans("r-llm", LLM_LOG, content=True),
        "rejected goal": goal_spans("h-rejected", _goal(OLD_LOG, "h-rejected")),  # type: ignore[arg-type]
        "in a client's trace": goal_spans("r-llm", _traced(LLM_LOG, "r-llm")),  # type: ignore[arg-type]
        "goals that ended together": goal_spans("r-llm", _traced(LLM_LOG, "r-llm"))  # type: ignore[arg-type]
        + goal_spans("h-rejected", _goal(OLD_LOG, "h-rejected")),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize("name", list(_batches()))
def test_the_request_is_the_one_the_sdk_encodes_from_its_spans(name: str) -> None:
    records = _batches()[name]
    resource = agora_resource("0.1.0")
    ours = SpanEncoder("0.1.0", resource.attributes).request(records)
    sdk = encode_spans(to_readable_spans(records, "0.1.0", resource))
    assert ExportTraceServiceRequest.FromString(ours) == sdk
    assert ours == sdk.SerializePartialToString()  # byte for byte, as the SDK would send
    assert len(sdk.resource_spans[0].scope_spans[0].spans) == len(records)


@pytest.mark.parametrize(
    "value", ["", "é ☃", True, False, 0, -1, 2**63 - 1, -(2**63), 0.0, -2.5, (), ("a", 1, 0.5)]
)
def test_attribute_values_are_the_sdks_own(value: object) -> None:
    from opentelemetry.exporter.otlp.proto.common._internal import _encode_value

    expected = _encode_value(value)
    assert AnyValue.FromString(encode_attribute_value(value)) == expected
    assert encode_attribute_value(value) == expected.SerializePartialToString()


def test_an_attribute_that_otlp_cannot_carry_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="dict"):
        encode_attribute_value({"nested": 1})


def test_equal_values_of_other_types_keep_their_types() -> None:
    # True == 1 == 1.0, 0.0 == -0.0 and ("a", 1) == ("a", True): each span carries its own.
    base = goal_spans("r-llm", LLM_LOG)[0]
    values: list[object] = [True, 1, 1.0, "1", ("a", 1), ("a", True), 1, True, 0.0, -0.0, 0, False]
    records = [
        msgspec.structs.replace(base, span_id=n + 1, attributes={"agora.x": v})  # type: ignore[dict-item]
        for n, v in enumerate(values)
    ]
    resource = agora_resource("0.1.0")
    ours = SpanEncoder("0.1.0", resource.attributes).request(records)
    assert ours == encode_spans(to_readable_spans(records, "0.1.0", resource)).SerializeToString()
