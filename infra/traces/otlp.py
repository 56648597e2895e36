"""Span records handed to the official OpenTelemetry SDK's OTLP exporters.

The records' ids and times are the log's, so spans are built as the SDK's ``ReadableSpan``
directly (a tracer would make ids and read the clock) and given to the exporter that the
standard environment names (``Settings.otlp``): ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` /
``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the default, or ``grpc``), with the
endpoint, headers, timeout, compression and certificates of the ``OTEL_EXPORTER_OTLP_*``
variables, read by the exporter itself. ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
complete the resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from events.errors import AgoraError
from projections.spans import SCHEMA_URL, SpanRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

    from infra.settings import OtlpTarget

__all__ = [
    "Signal",
    "TraceExportError",
    "TraceTarget",
    "TracesNotInstalledError",
    "agora_resource",
    "to_readable_spans",
]

Signal = Literal["traces", "metrics"]
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


def _exporter(protocol: str) -> SpanExporter:
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )

            return GrpcExporter()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    except ImportError as exc:
        raise TracesNotInstalledError(
            f"exporting traces needs the OpenTelemetry SDK and its OTLP exporter ({exc.name} "
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
        self._exporter = _exporter(self.protocol)
        # Once: detecting the resource costs more than converting a goal's spans.
        self._resource = agora_resource(self.version)

    def export(self, records: Sequence[SpanRecord]) -> None:
        """Send ``records`` (blocking: call it from a thread). Raises when refused."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        if not records:
            return
        result = self._exporter.export(to_readable_spans(records, self.version, self._resource))
        if result is not SpanExportResult.SUCCESS:
            raise TraceExportError(
                f"the OTLP receiver at {self.endpoint} ({self.protocol}) did not take "
                f"{len(records)} spans; is it running? (OTEL_EXPORTER_OTLP_ENDPOINT)"
            )

    def close(self) -> None:
        self._exporter.shutdown()
