"""A minimal OTLP receiver on loopback, to check what agora sends: ``/v1/traces`` and
``/v1/metrics`` over HTTP, and the metrics service over gRPC, each request decoded with the
OpenTelemetry protocol's own messages (``opentelemetry-proto``), so what agora's exporters send
is read exactly as a collector would read it. The tests and the ``observe`` benchmark receive
with it; it keeps every request in memory, so it is no collector to run for long."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = ["OtlpReceiver"]


class _GrpcMetrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(  # noqa: N802  the protocol's name
        self, request: ExportMetricsServiceRequest, _context: object
    ) -> ExportMetricsServiceResponse:
        with self._receiver._lock:
            self._receiver.metrics.append(request)
        return ExportMetricsServiceResponse()


class OtlpReceiver:
    """Start it with ``with``; ``endpoint`` is what OTEL_EXPORTER_OTLP_ENDPOINT names for
    OTLP/HTTP, ``grpc_endpoint`` for OTLP/gRPC (metrics)."""

    def __init__(self, *, grpc_metrics: bool = True) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                answer: Any
                if self.path == "/v1/traces":
                    request: Any = ExportTraceServiceRequest.FromString(body)
                    answer = ExportTraceServiceResponse()
                    with receiver._lock:
                        receiver.traces.append(request)
                elif self.path == "/v1/metrics":
                    request = ExportMetricsServiceRequest.FromString(body)
                    answer = ExportMetricsServiceResponse()
                    with receiver._lock:
                        receiver.metrics.append(request)
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = answer.SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._grpc_metrics = grpc_metrics
        self._grpc = grpc.server(ThreadPoolExecutor(max_workers=2))
        # The generated servicer helpers are untyped.
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _GrpcMetrics(self), self._grpc
        )
        self.grpc_endpoint = f"http://127.0.0.1:{self._grpc.add_insecure_port('127.0.0.1:0')}"

    def __enter__(self) -> OtlpReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        if self._grpc_metrics:
            self._grpc.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._grpc.stop(grace=None)
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> Iterator[Span]:
        with self._lock:
            requests = list(self.traces)
        for request in requests:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    yield from scope.spans

    def metric_points(self) -> Iterator[Metric]:
        with self._lock:
            requests = list(self.metrics)
        for request in requests:
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    yield from scope.metrics
