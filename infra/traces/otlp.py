"""Span records sent over OTLP by the official OpenTelemetry SDK's exporters.

The records are encoded straight into the protocol's ``ExportTraceServiceRequest``
(``infra.traces.otlp_encoding``): building the SDK's ``ReadableSpan`` objects and having its
encoder walk them cost eight times as much CPU for the same bytes. The SDK's exporter
that the standard environment names (``Settings.otlp``) sends that request:
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``,
the default, or ``grpc``), with the endpoint, headers, timeout, compression, certificates and
retries of the ``OTEL_EXPORTER_OTLP_*`` variables, read by the exporter itself.
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` complete the resource.

``to_readable_spans`` keeps the records' SDK form: the encoding is tested against the SDK's
own encoder of those spans.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from events.errors import AgoraError, ConfigurationError
from infra.traces.otlp_encoding import SpanEncoder
from projections.spans import SCHEMA_URL, SpanRecord

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan

    from infra.settings import OtlpTarget

__all__ = [
    "Signal",
    "TraceExportError",
    "TraceTarget",
    "TracesNotInstalledError",
    "agora_resource",
    "sdk_exporter",
    "to_readable_spans",
]

Signal = Literal["traces", "metrics"]
T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TracesNotInstalledError(AgoraError):
    """The OpenTelemetry SDK or its OTLP exporter is not installed."""


class TraceExportError(AgoraError):
    """The OTLP receiver did not take the spans."""


def _nanos(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def agora_resource(version: str) -> Resource:
    """agora's resource, completed by OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the SDK
    reads them)."""
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": "agora", "service.version": version})


def to_readable_spans(
    records: Sequence[SpanRecord], version: str, resource: Resource | None = None
) -> list[ReadableSpan]:
    """The SDK's spans for ``records``, under one resource and agora's instrumentation scope."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    resource = resource or agora_resource(version)
    scope = InstrumentationScope("agora", version, SCHEMA_URL)
    flags = TraceFlags(TraceFlags.SAMPLED)
    kinds = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT}
    codes = {"unset": StatusCode.UNSET, "ok": StatusCode.OK, "error": StatusCode.ERROR}
    spans = []
    ours = {record.span_id for record in records}
    for record in records:
        # The root's parent, when there is one, is the client's span (its traceparent).
        remote = record.parent_span_id not in ours
        parent = (
            SpanContext(record.trace_id, record.parent_span_id, is_remote=remote, trace_flags=flags)
            if record.parent_span_id is not None
            else None
        )
        status = Status(
            codes[record.status], record.status_message if record.status == "error" else None
        )
        spans.append(
            ReadableSpan(
                name=record.name,
                context=SpanContext(
                    record.trace_id, record.span_id, is_remote=False, trace_flags=flags
                ),
                parent=parent,
                resource=resource,
                attributes=dict(record.attributes),
                kind=kinds[record.kind],
                status=status,
                start_time=_nanos(record.start),
                end_time=_nanos(record.end),
                instrumentation_scope=scope,
            )
        )
    return spans


class _RequestSender(Protocol):
    """An SDK exporter that sends an encoded request. The SDK has no public way to send
    bytes, so the two below use its exporters' own seams (the HTTP exporter's client, the gRPC
    exporter's ``_translate_data``); tests/integration/test_otlp_transport.py holds them to a
    real receiver over both protocols."""

    def send(self, request: bytes) -> bool: ...

    def shutdown(self) -> None: ...


def _http_sender() -> _RequestSender:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    class HttpSender(OTLPSpanExporter):
        """The SDK's OTLP/HTTP exporter (its session, headers, compression, retries), handed
        an encoded request instead of the SDK's spans."""

        def send(self, request: bytes) -> bool:
            return self._client.export(request).success

    return HttpSender()


def _grpc_sender() -> _RequestSender:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.trace.export import SpanExportResult

    class GrpcSender(OTLPSpanExporter):
        """The SDK's OTLP/gRPC exporter (its channel, credentials, metadata, compression,
        retries); what it exports is already the request."""

        def _translate_data(self, data: Any) -> ExportTraceServiceRequest:
            request: ExportTraceServiceRequest = data
            return request

        def _count_data(self, data: Any) -> int:
            request: ExportTraceServiceRequest = data
            return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)

        def send(self, request: bytes) -> bool:
            message = ExportTraceServiceRequest.FromString(request)  # parsed in C: cheap
            return self._export(message) is SpanExportResult.SUCCESS  # type: ignore[arg-type]

    return GrpcSender()


def sdk_exporter(signal: Signal, protocol: str, http: Callable[[], T], grpc: Callable[[], T]) -> T:
    """The SDK's exporter of ``signal`` for ``protocol``, made by ``http`` or ``grpc``, with
    what keeps it from starting said as agora's errors: a missing package, or a compression
    the SDK's gRPC exporter cannot do (it raises its own exception for anything but gzip)."""
    try:
        if protocol != "grpc":
            return http()
        from opentelemetry.exporter.otlp.proto.grpc.exporter import (
            InvalidCompressionValueException,
        )

        try:
            return grpc()
        except InvalidCompressionValueException as exc:
            raise ConfigurationError(
                f"{exc}: OTLP over gRPC compresses with gzip or not at all (leave the "
                "variable unset)"
            ) from None
    except ImportError as exc:
        raise TracesNotInstalledError(
            f"exporting {signal} needs the OpenTelemetry SDK and its OTLP exporter ({exc.name} "
            "is missing): pip install 'agora[traces]'"
        ) from None


@dataclass
class TraceTarget:
    """The OTLP receiver the settings name, and an exporter to it."""

    version: str
    otlp: OtlpTarget

    def __post_init__(self) -> None:
        self.protocol = self.otlp.protocol
        self.endpoint = self.otlp.url
        self._sender = sdk_exporter("traces", self.protocol, _http_sender, _grpc_sender)
        # Once: detecting the resource costs more than encoding a goal's spans.
        self._encoder = SpanEncoder(self.version, agora_resource(self.version).attributes)

    def export(self, records: Sequence[SpanRecord]) -> None:
        """Send ``records`` (blocking: call it from a thread). Raises when refused."""
        if not records:
            return
        if not self._sender.send(self._encoder.request(records)):
            raise TraceExportError(
                f"the OTLP receiver at {self.endpoint} ({self.protocol}) did not take "
                f"{len(records)} spans; is it running? (OTEL_EXPORTER_OTLP_ENDPOINT)"
            )

    def close(self) -> None:
        self._sender.shutdown()
