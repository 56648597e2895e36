"""The encoded requests reach a receiver over OTLP/HTTP and OTLP/gRPC, compressed or not, as
the OTEL_EXPORTER_OTLP_* variables ask, and decode to what the SDK's own encoder sends. (gRPC
core takes its compression header off before a servicer sees it: only HTTP's gzip is seen to
be gzip, by the receiver decoding it.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from events.errors import ConfigurationError
from infra.metrics.otlp import MetricsTarget
from infra.settings import Settings
from infra.traces.otlp import TraceExportError, TraceTarget, agora_resource, to_readable_spans
from infra.traces.receiver import OtlpReceiver
from projections.spans import goal_spans
from tests.unit.test_timeline import LLM_LOG

RECORDS = goal_spans("r-llm", LLM_LOG, content=True)


class _GrpcTraces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self._lock = threading.Lock()

    def Export(  # noqa: N802  the protocol's name
        self, request: ExportTraceServiceRequest, _context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        with self._lock:
            self.requests.append(request)
        return ExportTraceServiceResponse()


@pytest.fixture
def grpc_traces() -> Iterator[tuple[str, _GrpcTraces]]:
    servicer = _GrpcTraces()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", servicer
    finally:
        server.stop(grace=None)


def _sdk_request() -> ExportTraceServiceRequest:
    return encode_spans(to_readable_spans(RECORDS, "test", agora_resource("test")))


def _export(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    target = TraceTarget("test", Settings.from_env().otlp)
    try:
        target.export(RECORDS)
    finally:
        target.close()


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_http_sends_what_the_sdk_would(monkeypatch: pytest.MonkeyPatch, compression: str) -> None:
    with OtlpReceiver(grpc_metrics=False) as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        env |= {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        _export(monkeypatch, env | {"OTEL_EXPORTER_OTLP_COMPRESSION": compression})
        assert receiver.traces == [_sdk_request()]


def test_grpc_sends_what_the_sdk_would(
    monkeypatch: pytest.MonkeyPatch, grpc_traces: tuple[str, _GrpcTraces]
) -> None:
    endpoint, servicer = grpc_traces
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    env |= {"OTEL_EXPORTER_OTLP_INSECURE": "true"}
    _export(monkeypatch, env | {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})
    assert servicer.requests == [_sdk_request()]


def test_a_receiver_that_is_not_there_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver(grpc_metrics=False) as receiver:
        gone = receiver.endpoint  # a port that was just free and is now closed
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": gone, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    env |= {"OTEL_EXPORTER_OTLP_TIMEOUT": "1"}
    with pytest.raises(TraceExportError, match=gone.removeprefix("http://")):
        _export(monkeypatch, env)


@pytest.mark.parametrize("signal", ["traces", "metrics"])
def test_a_compression_grpc_cannot_do_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, signal: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
    settings = Settings.from_env()
    start = {
        "traces": lambda: TraceTarget("test", settings.otlp),
        "metrics": lambda: MetricsTarget("test", settings.otlp_metrics),
    }[signal]
    with pytest.raises(ConfigurationError, match="gzip or not at all"):
        start()
